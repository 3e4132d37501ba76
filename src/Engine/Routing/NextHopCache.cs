using System.Runtime.CompilerServices;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Routing;

/// <summary>The outcome of a next-hop lookup.</summary>
internal enum NextHopState
{
    /// <summary>Egress interface and destination MAC are known.</summary>
    Resolved,
    /// <summary>The route is known, the neighbour is being resolved: hold the frame and ask again.</summary>
    Pending,
    /// <summary>The kernel has no route to the destination.</summary>
    NoRoute,
}

/// <summary>A cached next hop for one destination address.</summary>
internal struct NextHop
{
    /// <summary>The destination this entry is for (a slot hint must match it).</summary>
    public IpAddr Destination;
    public int IfIndex;
    public IpAddr Gateway;
    /// <summary>The neighbour's MAC as one 48-bit number (bytes in wire order, little-endian).</summary>
    public ulong Mac;
    public NextHopState State;
    /// <summary>When (in engine ticks) to ask the kernel again.</summary>
    public long RefreshAt;
    /// <summary>When the kernel was last asked to resolve this neighbour (pending entries).</summary>
    public long AskedAt;

    public readonly string MacText
    {
        get
        {
            ulong mac = Mac;
            return string.Join(':', Enumerable.Range(0, 6).Select(i => ((byte)(mac >> (8 * i))).ToString("x2")));
        }
    }
}

/// <summary>
/// Destination address (IPv4 or IPv6) to next hop (egress interface, neighbour MAC), learnt from the kernel's FIB and
/// neighbour table (ARP or NDP) and kept for a while: the ARP cache of the data path. A miss or an expired entry asks
/// the route source (for the kernel's, a published answer or a question queued to <see cref="RouteResolver"/>, the
/// frame held meanwhile); a hit is one dictionary probe, or none with a connection's slot hint.
/// <para>
/// Bounded: at most <see cref="Capacity"/> destinations. When it is full, the clock's hand goes round the slots and
/// takes the first one not used since it last passed (CLOCK, an approximation of least recently used), so a flood
/// from many (spoofed) sources cannot grow it, and the destinations in use stay. A connection whose slot was taken
/// finds its hint no longer matches and looks its destination up again.
/// </para>
/// </summary>
internal sealed class NextHopCache
{
    /// <summary>Destinations kept by default (per worker).</summary>
    public const int DefaultCapacity = 65536;

    private readonly IRouteSource _source;
    private readonly Dictionary<IpAddr, int> _index;
    private NextHop[] _slots = new NextHop[64];
    private bool[] _used = new bool[64];
    private int _count;
    private int _hand;
    private readonly long _resolvedTtl;
    private readonly long _pendingRetry;

    /// <param name="resolvedTtl">How long a resolved entry is trusted, in the caller's ticks.</param>
    /// <param name="pendingRetry">How soon an unresolved neighbour is asked about again.</param>
    /// <param name="capacity">Destinations kept at most.</param>
    public NextHopCache(IRouteSource source, long resolvedTtl, long pendingRetry, int capacity = DefaultCapacity)
    {
        if (capacity < 1)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "at least one destination");
        _source = source;
        _resolvedTtl = resolvedTtl;
        _pendingRetry = pendingRetry;
        Capacity = capacity;
        _index = new Dictionary<IpAddr, int>(Math.Min(capacity, 1024));
    }

    public int Capacity { get; }

    public int Count => _index.Count;

    /// <summary>Destinations dropped to make room for others.</summary>
    public long Evictions { get; private set; }

    /// <summary>Forgets every entry; slot hints held by connections stop matching.</summary>
    public void Clear()
    {
        _index.Clear();
        Array.Clear(_slots);
        Array.Clear(_used);
        _count = 0;
        _hand = 0;
    }

    public IEnumerable<KeyValuePair<IpAddr, NextHop>> Entries => _index.Select(kv => new KeyValuePair<IpAddr, NextHop>(kv.Key, _slots[kv.Value]));

    /// <summary>The next hop toward destination, by reference (valid until the next lookup), refreshed from
    /// the kernel when stale. slotHint is the caller's remembered cache slot for this destination (a
    /// connection's): checked, used when it still holds the destination, and updated.</summary>
    public ref readonly NextHop Find(in IpAddr destination, long now, ref int slotHint)
    {
        int i = slotHint;
        if ((uint)i < (uint)_count)
        {
            ref var h = ref _slots[i];
            if (h.Destination == destination && now < h.RefreshAt)
            {
                _used[i] = true;
                return ref h;
            }
        }
        Lookup(destination, now, out _);
        slotHint = _index[destination];
        return ref _slots[slotHint];
    }

    /// <summary>The resolved, fresh next hop a slot hint names for destination, without asking anyone: false
    /// when the hint no longer holds it, it is stale, or it is not resolved (<see cref="Find"/> then).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryResolvedAt(int slotHint, in IpAddr destination, long now, out ulong mac, out int ifIndex)
    {
        var slots = _slots;
        if ((uint)slotHint < (uint)_count && (uint)slotHint < (uint)slots.Length)
        {
            ref readonly var h = ref slots[slotHint];
            if (h.Destination == destination && now < h.RefreshAt && h.State == NextHopState.Resolved)
            {
                _used[slotHint] = true;
                mac = h.Mac;
                ifIndex = h.IfIndex;
                return true;
            }
        }
        mac = 0;
        ifIndex = 0;
        return false;
    }

    public NextHopState Lookup(IpAddr destination, long now, out NextHop hop)
    {
        hop = default;
        if (_index.TryGetValue(destination, out int slot))
        {
            hop = _slots[slot];
            _used[slot] = true;
            if (now < hop.RefreshAt)
                return hop.State;
        }
        else
        {
            slot = -1;
        }
        // Ask the kernel to resolve once, and again every second while it stays unresolved (an entry that
        // went FAILED is only retried when someone asks).
        bool askAgain = hop.State != NextHopState.Pending || now - hop.AskedAt >= 1000;
        long askedAt = hop.AskedAt;
        hop = Refresh(destination, now, !askAgain);
        hop.Destination = destination;
        if (hop.State == NextHopState.Pending)
            hop.AskedAt = askAgain ? now : askedAt;
        if (slot < 0)
            slot = Place(destination);
        _slots[slot] = hop;
        _used[slot] = true;
        return hop.State;
    }

    /// <summary>A slot for a new destination: a new one while there is room, else the first the clock's hand finds
    /// unused since its last round (its destination forgotten).</summary>
    private int Place(in IpAddr destination)
    {
        int slot;
        if (_count < Capacity)
        {
            if (_count == _slots.Length)
            {
                int grown = Math.Min(Capacity, _slots.Length * 2);
                Array.Resize(ref _slots, grown);
                Array.Resize(ref _used, grown);
            }
            slot = _count++;
        }
        else
        {
            while (_used[_hand])
            {
                _used[_hand] = false;
                _hand = _hand + 1 == _count ? 0 : _hand + 1;
            }
            slot = _hand;
            _hand = _hand + 1 == _count ? 0 : _hand + 1;
            _index.Remove(_slots[slot].Destination);
            Evictions++;
        }
        _index[destination] = slot;
        return slot;
    }
    private NextHop Refresh(IpAddr destination, long now, bool alreadyAsked)
    {
        var route = _source.Lookup(destination);
        if (route.Pending)
            return new NextHop { State = NextHopState.Pending, RefreshAt = now + _pendingRetry };
        if (!route.Found)
            return new NextHop { State = NextHopState.NoRoute, RefreshAt = now + _pendingRetry };
        var hop = new NextHop { IfIndex = route.IfIndex, Gateway = route.NextHop };
        byte[]? mac = _source.Neighbor(route.IfIndex, route.NextHop);
        if (mac == null)
        {
            if (!alreadyAsked)
                _source.Resolve(route.IfIndex, route.NextHop);
            hop.State = NextHopState.Pending;
            hop.RefreshAt = now + _pendingRetry;
            return hop;
        }
        for (int i = 5; i >= 0; i--)
            hop.Mac = hop.Mac << 8 | mac[i];
        hop.State = NextHopState.Resolved;
        hop.RefreshAt = now + _resolvedTtl;
        return hop;
    }
}
