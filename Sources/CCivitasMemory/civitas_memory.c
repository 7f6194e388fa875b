#include "civitas_memory.h"
