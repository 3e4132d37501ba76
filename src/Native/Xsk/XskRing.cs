using ZonLb.Native.Abi;

namespace ZonLb.Native.Xsk;

/// <summary>
/// One AF_XDP ring mapped from the kernel: fill and TX rings are produced by us, RX and completion rings
/// are consumed by us. The cached indices follow libxdp's xsk.h: the shared producer/consumer words are
/// touched only when the cached view runs out, read with acquire and published with release semantics.
/// A ring is owned by one thread.
/// </summary>
public sealed unsafe class XskRing
{
    private readonly uint* _producer;
    private readonly uint* _consumer;
    private readonly uint* _flags;
    private readonly byte* _descs;
    private readonly uint _mask;
    private uint _cachedProd;
    private uint _cachedCons;

    internal XskRing(byte* map, in XdpRingOffset off, uint size, bool isProducer)
    {
        if (size == 0 || (size & (size - 1)) != 0)
            throw new ArgumentException($"ring size {size} is not a power of two");
        _producer = (uint*)(map + off.Producer);
        _consumer = (uint*)(map + off.Consumer);
        _flags = (uint*)(map + off.Flags);
        _descs = map + off.Desc;
        Size = size;
        _mask = size - 1;
        _cachedProd = Volatile.Read(ref *_producer);
        _cachedCons = Volatile.Read(ref *_consumer);
        if (isProducer)
            _cachedCons += size;
    }

    public uint Size { get; }

    /// <summary>True when the kernel asked to be woken (need_wakeup) for this ring.</summary>
    public bool NeedsWakeup => (Volatile.Read(ref *_flags) & XdpConstants.XDP_RING_NEED_WAKEUP) != 0;

    // ---- producer side (fill, tx) ----

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

    /// <summary>Publishes n reserved slots to the kernel with one release store.</summary>
    public void Submit(uint n) => Volatile.Write(ref *_producer, *_producer + n);

    /// <summary>Entries the kernel has not consumed yet (producer rings).</summary>
    public uint Outstanding => *_producer - Volatile.Read(ref *_consumer);

    /// <summary>Entries published by the producer and not yet released by the consumer, whichever side we are.</summary>
    public uint Pending => Volatile.Read(ref *_producer) - Volatile.Read(ref *_consumer);

    // ---- consumer side (rx, completion) ----

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

    /// <summary>Returns n peeked entries to the kernel with one release store.</summary>
    public void Release(uint n) => Volatile.Write(ref *_consumer, *_consumer + n);

    /// <summary>The frame addresses of the entries between the consumer and producer indices: frames the other
    /// side has not taken yet. Used to take frames back from a socket that is being closed.</summary>
    public List<ulong> PendingAddresses(bool descriptors)
    {
        var list = new List<ulong>();
        uint cons = Volatile.Read(ref *_consumer), prod = Volatile.Read(ref *_producer);
        for (uint i = cons; i != prod; i++)
            list.Add(descriptors ? DescAt(i).Addr : AddrAt(i));
        return list;
    }

    // ---- entries ----

    /// <summary>Address entry of a fill or completion ring.</summary>
    public ref ulong AddrAt(uint index) => ref ((ulong*)_descs)[index & _mask];

    /// <summary>Descriptor entry of an RX or TX ring.</summary>
    public ref XdpDesc DescAt(uint index) => ref ((XdpDesc*)_descs)[index & _mask];
}
