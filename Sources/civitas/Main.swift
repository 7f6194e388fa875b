import CivitasCommands

@main
enum Main {
    static func main() async {
        await Civitas.main(nil)
    }
}
