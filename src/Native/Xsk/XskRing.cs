using ZonLb.Native.Abi;
using ZonLb.Native.Interop;

namespace ZonLb.Native.Xsk;

/// <summary>
/// What the producer and consumer rings share: the mapped producer, consumer and flags words and the entries, with
/// this side's cached indices (libxdp's xsk.h: the shared words are touched only when the cached view runs out, read
/// with acquire and published with release semantics). A ring is owned by one thread. Built over the ring libxdp
/// mapped, after <see cref="CheckLayout"/> has held its addresses against the kernel's offsets.
/// </summary>
public abstract unsafe class XskRing
{
    private protected readonly uint* _producer;
    private protected readonly uint* _consumer;
    private protected readonly uint* _flags;
    private protected readonly byte* _entries;
    private protected readonly uint _mask;
    private protected uint _cachedProd;
    private protected uint _cachedCons;

    private protected XskRing(in XskRingView view)
    {
        _producer = view.Producer;
        _consumer = view.Consumer;
        _flags = view.Flags;
        _entries = (byte*)view.Ring;
        Size = view.Size;
        _mask = view.Size - 1;
        _cachedProd = Volatile.Read(ref *_producer);
        _cachedCons = Volatile.Read(ref *_consumer);
    }

    public uint Size { get; }

    /// <summary>True when the kernel asked to be woken (need_wakeup) for this ring.</summary>
    public bool NeedsWakeup => (Volatile.Read(ref *_flags) & XdpConstants.XDP_RING_NEED_WAKEUP) != 0;

    /// <summary>Entries published by the producer and not yet released by the consumer, whichever side we are.</summary>
    public uint Pending => Volatile.Read(ref *_producer) - Volatile.Read(ref *_consumer);

    /// <summary>The frame addresses of the entries between the consumer and producer indices: frames the other
    /// side has not taken yet. Used to take frames back from a socket that is being closed.</summary>
    public List<ulong> PendingAddresses()
    {
        var list = new List<ulong>();
        uint cons = Volatile.Read(ref *_consumer), prod = Volatile.Read(ref *_producer);
        for (uint i = cons; i != prod; i++)
            list.Add(EntrySize == 8 ? ((ulong*)_entries)[i & _mask] : ((XdpDesc*)_entries)[i & _mask].Addr);
        return list;
    }

    /// <summary>Bytes per entry: 8 (an address: fill, completion) or 16 (a descriptor: RX, TX).</summary>
    public abstract int EntrySize { get; }

    /// <summary>
    /// Holds the addresses libxdp gave a ring against the kernel's offsets for it (XDP_MMAP_OFFSETS): the producer,
    /// consumer and flags words and the entries must lie where the offsets put them from one base, each word inside
    /// the mapped length (the entries' offset plus size entries), the size a power of two and the mask size - 1.
    /// </summary>
    internal static void CheckLayout(in XskRingView view, in XdpRingOffset off, int entrySize, string what)
    {
        uint size = view.Size;
        if (size == 0 || (size & (size - 1)) != 0 || view.Mask != size - 1)
            throw new InvalidOperationException($"{what}: ring size {size} (mask {view.Mask}) is not a power of two");
        ulong mapped = off.Desc + (ulong)size * (ulong)entrySize;
        foreach (var (name, at) in new[] { ("producer", off.Producer), ("consumer", off.Consumer), ("flags", off.Flags) })
            if (at + 4 > mapped || at % 4 != 0)
                throw new InvalidOperationException($"{what}: the kernel's {name} offset {at} lies outside the {mapped} bytes mapped");
        byte* b = (byte*)view.Producer - off.Producer;
        if ((byte*)view.Consumer - off.Consumer != b || (byte*)view.Flags - off.Flags != b || (byte*)view.Ring - off.Desc != b)
            throw new InvalidOperationException($"{what}: libxdp's ring addresses do not match the kernel's offsets");
    }
}

/// <summary>A ring we produce into: fill (frame addresses for the kernel to receive into) and TX (descriptors to send).
/// Reserve, write the entries, submit; or cancel what was reserved and not written (libxdp's xsk_ring_prod).</summary>
public sealed unsafe class XskProducerRing : XskRing
{
    private readonly int _entrySize;

    internal XskProducerRing(in XskRingView view, int entrySize)
        : base(view)
    {
        _entrySize = entrySize;
        _cachedCons += Size; // free = cached_cons - cached_prod, as in libxdp
    }

    public override int EntrySize => _entrySize;

    /// <summary>Free slots, refreshing the cached consumer index only when fewer than wanted are known.</summary>
    public uint FreeEntries(uint wanted)
    {
        uint free = _cachedCons - _cachedProd;
        if (free >= wanted)
            return free;
        _cachedCons = Volatile.Read(ref *_consumer) + Size;
        return _cachedCons - _cachedProd;
    }

    /// <summary>Reserves exactly n slots or none (libxdp's all-or-nothing reserve).</summary>
    public bool Reserve(uint n, out uint index)
    {
        if (FreeEntries(n) < n)
        {
            index = 0;
            return false;
        }
        index = _cachedProd;
        _cachedProd += n;
        return true;
    }

    /// <summary>Gives back the last n reserved slots, not submitted (libxdp's xsk_ring_prod__cancel).</summary>
    public void Cancel(uint n) => _cachedProd -= n;

    /// <summary>Publishes n reserved slots to the kernel with one release store.</summary>
    public void Submit(uint n) => Volatile.Write(ref *_producer, *_producer + n);

    /// <summary>Entries the kernel has not consumed yet.</summary>
    public uint Outstanding => *_producer - Volatile.Read(ref *_consumer);

    /// <summary>Address entry (fill ring).</summary>
    public ref ulong AddrAt(uint index) => ref ((ulong*)_entries)[index & _mask];

    /// <summary>Descriptor entry (TX ring).</summary>
    public ref XdpDesc DescAt(uint index) => ref ((XdpDesc*)_entries)[index & _mask];
}

/// <summary>A ring we consume from: RX (received descriptors) and completion (addresses of sent frames). Peek, read
/// the entries, release; or cancel what was peeked and not used (libxdp's xsk_ring_cons).</summary>
public sealed unsafe class XskConsumerRing : XskRing
{
    private readonly int _entrySize;

    internal XskConsumerRing(in XskRingView view, int entrySize)
        : base(view) => _entrySize = entrySize;

    public override int EntrySize => _entrySize;

    /// <summary>Takes up to max available entries; returns how many, and the first index.</summary>
    public uint Peek(uint max, out uint index)
    {
        uint entries = _cachedProd - _cachedCons;
        if (entries == 0)
        {
            _cachedProd = Volatile.Read(ref *_producer);
            entries = _cachedProd - _cachedCons;
        }
        if (entries > max)
            entries = max;
        index = _cachedCons;
        _cachedCons += entries;
        return entries;
    }

    /// <summary>Puts back the last n peeked entries, not released (libxdp's xsk_ring_cons__cancel).</summary>
    public void Cancel(uint n) => _cachedCons -= n;

    /// <summary>Returns n peeked entries to the kernel with one release store.</summary>
    public void Release(uint n) => Volatile.Write(ref *_consumer, *_consumer + n);

    /// <summary>Address entry (completion ring).</summary>
    public ref ulong AddrAt(uint index) => ref ((ulong*)_entries)[index & _mask];

    /// <summary>Descriptor entry (RX ring).</summary>
    public ref XdpDesc DescAt(uint index) => ref ((XdpDesc*)_entries)[index & _mask];
}
