namespace ZonLb.Engine.Runtime;

/// <summary>A received frame passed from the worker that got it to the worker that owns its connection.</summary>
internal struct Handoff
{
    public ulong Addr;
    public int Length;
    /// <summary>Multi-buffer: the next item holds more of the same frame (a chain is pushed whole, in order).</summary>
    public bool Continues;
}

/// <summary>
/// A bounded single-producer single-consumer ring between two workers: the producer publishes with one release
/// store per batch, the consumer reads with acquire loads. No locks, no allocation.
/// </summary>
internal sealed class HandoffRing
{
    private readonly Handoff[] _items;
    private readonly int _mask;
    private long _head; // next to read (consumer)
    private long _tail; // next to write (producer)
    private long _tailPublished;

    public HandoffRing(int capacity)
    {
        if (capacity < 2 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "a power of two");
        _items = new Handoff[capacity];
        _mask = capacity - 1;
    }

    /// <summary>Producer: adds one item (visible after <see cref="Publish"/>); false when full.</summary>
    public bool TryPush(ulong addr, int length)
    {
        if (_tail - Volatile.Read(ref _head) >= _items.Length)
            return false;
        Put(addr, length, continues: false);
        return true;
    }

    /// <summary>Producer: adds a frame of several buffers, its first and then the rest, all or nothing.</summary>
    public bool TryPushChain(ulong addr, int length, ReadOnlySpan<Native.Abi.XdpDesc> rest)
    {
        if (_tail + rest.Length + 1 - Volatile.Read(ref _head) > _items.Length)
            return false;
        Put(addr, length, continues: true);
        for (int j = 0; j < rest.Length; j++)
            Put(rest[j].Addr, (int)rest[j].Len, continues: j + 1 < rest.Length);
        return true;
    }

    private void Put(ulong addr, int length, bool continues)
    {
        ref var slot = ref _items[_tail & _mask];
        slot.Addr = addr;
        slot.Length = length;
        slot.Continues = continues;
        _tail++;
    }

    /// <summary>Producer: makes the items pushed so far visible; true when there were new ones.</summary>
    public bool Publish()
    {
        if (_tail == _tailPublished)
            return false;
        Volatile.Write(ref _tailPublished, _tail);
        return true;
    }

    /// <summary>Consumer: takes up to dst.Length items; returns how many.</summary>
    public int Drain(Span<Handoff> dst)
    {
        long head = _head;
        long available = Volatile.Read(ref _tailPublished) - head;
        int n = (int)Math.Min(available, dst.Length);
        for (int i = 0; i < n; i++)
            dst[i] = _items[(head + i) & _mask];
        Volatile.Write(ref _head, head + n);
        return n;
    }

    /// <summary>Items pushed and not yet drained (for frame accounting).</summary>
    public long Count => Volatile.Read(ref _tail) - Volatile.Read(ref _head);
}
