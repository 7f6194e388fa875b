import HeapModule

/// The future of a simulation: events for numbered targets, in time order, and in the
/// order they were scheduled when their times are equal, so a run is a function of its
/// seed alone. `incarnation` lets a restarted target ignore what was meant for its past.
public struct EventQueue<Payload> {
    public struct Event: Comparable {
        public var time: UInt64
        public var sequence: UInt64
        public var target: Int
        public var incarnation: Int
        public var payload: Payload

        public static func < (a: Self, b: Self) -> Bool { (a.time, a.sequence) < (b.time, b.sequence) }
        public static func == (a: Self, b: Self) -> Bool { a.time == b.time && a.sequence == b.sequence }
    }

    private var heap = Heap<Event>()
    private var sequence: UInt64 = 0

    public init() {}

    public mutating func schedule(at time: UInt64, target: Int, incarnation: Int, _ payload: Payload) {
        sequence += 1
        heap.insert(Event(time: time, sequence: sequence, target: target, incarnation: incarnation, payload: payload))
    }

    public var next: Event? { heap.min }

    public mutating func popNext() -> Event? { heap.popMin() }
}
