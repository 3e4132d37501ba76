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
/// neighbour table (ARP or NDP) and kept for a while: the ARP cache of the data path. A miss or an expired entry costs a
/// few rtnetlink round trips on the worker thread; a hit is one dictionary probe.
/// </summary>
internal sealed class NextHopCache
{
    private readonly IRouteSource _source;
    private readonly Dictionary<IpAddr, int> _index = new(1024);
    private NextHop[] _slots = new NextHop[64];
    private int _used;
    private readonly long _resolvedTtl;
    private readonly long _pendingRetry;

    /// <param name="resolvedTtl">How long a resolved entry is trusted, in the caller's ticks.</param>
    /// <param name="pendingRetry">How soon an unresolved neighbour is asked about again.</param>
    public NextHopCache(IRouteSource source, long resolvedTtl, long pendingRetry)
    {
        _source = source;
        _resolvedTtl = resolvedTtl;
        _pendingRetry = pendingRetry;
    }

    public int Count => _index.Count;

    /// <summary>Forgets every entry; slot hints held by connections stop matching.</summary>
    public void Clear()
    {
        _index.Clear();
        Array.Clear(_slots);
        _used = 0;
    }

    public IEnumerable<KeyValuePair<IpAddr, NextHop>> Entries => _index.Select(kv => new KeyValuePair<IpAddr, NextHop>(kv.Key, _slots[kv.Value]));

    /// <summary>The next hop toward destination, by reference (valid until the next lookup), refreshed from
    /// the kernel when stale. slotHint is the caller's remembered cache slot for this destination (a
    /// connection's): checked, used when it still holds the destination, and updated.</summary>
    public ref readonly NextHop Find(in IpAddr destination, long now, ref int slotHint)
    {
        int i = slotHint;
        if ((uint)i < (uint)_used)
        {
            ref var h = ref _slots[i];
            if (h.Destination == destination && now < h.RefreshAt)
                return ref h;
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
        if ((uint)slotHint < (uint)_used && (uint)slotHint < (uint)slots.Length)
        {
            ref readonly var h = ref slots[slotHint];
            if (h.Destination == destination && now < h.RefreshAt && h.State == NextHopState.Resolved)
            {
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
        {
            if (_used == _slots.Length)
                Array.Resize(ref _slots, _slots.Length * 2);
            slot = _used++;
            _index[destination] = slot;
        }
        _slots[slot] = hop;
        return hop.State;
    }

    private NextHop Refresh(IpAddr destination, long now, bool alreadyAsked)
    {
        var route = _source.Lookup(destination);
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
