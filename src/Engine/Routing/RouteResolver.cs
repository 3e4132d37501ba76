using System.Collections.Concurrent;
using ZonLb.Engine.Packets;
using ZonLb.Native.Interop;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Routing;

/// <summary>
/// Asks the kernel for routes and neighbours (rtnetlink) on a thread of its own, so that a worker never waits in
/// a netlink round trip: a worker's miss queues a request and the worker holds the frame; the answer is published
/// here (<see cref="TryGetRoute"/>, <see cref="TryGetNeighbor"/>) and the workers are woken to pick it up. A
/// neighbour the kernel does not know yet is probed (NTF_USE: the kernel sends ARP or an NDP solicitation) at most
/// once a second per neighbour and <see cref="MaxProbesPerSecond"/> in all, and looked at again every couple of
/// milliseconds until it answers or the wait runs out. Bounded: at most <see cref="Capacity"/> answers of each
/// kind are kept; beyond that the least recently asked go.
/// </summary>
internal sealed class RouteResolver : IDisposable
{
    /// <summary>Probes of unknown neighbours per second, in all: spoofed on-link sources must not make the kernel
    /// ARP for each of them.</summary>
    public const int MaxProbesPerSecond = 100;

    /// <summary>Answers kept of each kind (routes by destination, neighbours by address).</summary>
    public const int Capacity = 65536;

    /// <summary>Questions waiting at most: beyond that a new one is refused (its frame waits, then is dropped as
    /// neighbor_unresolved), so a flood of new destinations cannot queue without bound.</summary>
    public const int MaxOutstanding = 4096;

    /// <summary>Questions refused because <see cref="MaxOutstanding"/> were waiting.</summary>
    public long Refused;

    private const int RecheckMs = 2;

    internal readonly record struct Answer<T>(T Value, long AnsweredAt);

    private readonly ConcurrentDictionary<IpAddr, Answer<RouteAnswer>> _routes = new();
    private readonly ConcurrentDictionary<(int IfIndex, IpAddr Address), Answer<byte[]?>> _neighbors = new();
    private readonly ConcurrentDictionary<IpAddr, byte> _routesAsked = new();
    private readonly ConcurrentDictionary<(int, IpAddr), byte> _neighborsAsked = new();
    private readonly ConcurrentQueue<IpAddr> _routeRequests = new();
    private readonly ConcurrentQueue<(int IfIndex, IpAddr Address)> _neighborRequests = new();
    private readonly Dictionary<(int, IpAddr), long> _probedAt = new();
    private readonly Dictionary<(int, IpAddr), long> _waiting = new(); // neighbours probed, unresolved: until when to look
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Action _answered;
    private readonly long _neighborWaitMs;
    private readonly Action<string> _log;
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _probeWindow;
    private int _probesInWindow;

    /// <param name="answered">Called on the resolver's thread after new answers are published (wakes the workers).</param>
    /// <param name="neighborWaitMs">How long an unresolved neighbour is looked at again after a probe.</param>
    public RouteResolver(Action answered, long neighborWaitMs, Action<string> log)
    {
        _answered = answered;
        _neighborWaitMs = neighborWaitMs;
        _log = log;
        _thread = new Thread(Run) { Name = "zonlb-resolver", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Probes refused by the global rate limit.</summary>
    public long ProbesLimited;

    public bool TryGetRoute(in IpAddr destination, out Answer<RouteAnswer> answer) => _routes.TryGetValue(destination, out answer);

    public bool TryGetNeighbor(int ifIndex, in IpAddr address, out Answer<byte[]?> answer) => _neighbors.TryGetValue((ifIndex, address), out answer);

    /// <summary>Asks for a destination's route (once while the question is open).</summary>
    public void AskRoute(in IpAddr destination)
    {
        if (_routesAsked.Count >= MaxOutstanding)
        {
            Interlocked.Increment(ref Refused);
            return;
        }
        if (_routesAsked.TryAdd(destination, 0))
        {
            _routeRequests.Enqueue(destination);
            _wake.Release();
        }
    }

    /// <summary>Asks for a neighbour's MAC, probing it when the kernel has none (once while the question is open).</summary>
    public void AskNeighbor(int ifIndex, in IpAddr address)
    {
        if (_neighborsAsked.Count >= MaxOutstanding)
        {
            Interlocked.Increment(ref Refused);
            return;
        }
        if (_neighborsAsked.TryAdd((ifIndex, address), 0))
        {
            _neighborRequests.Enqueue((ifIndex, address));
            _wake.Release();
        }
    }

    private void Run()
    {
        using var nl = new RtNetlink();
        while (!_stop)
        {
            _wake.Wait(_waiting.Count > 0 ? RecheckMs : 1000);
            if (_stop)
                return;
            long now = Environment.TickCount64;
            bool published = false;
            try
            {
                while (_routeRequests.TryDequeue(out var destination))
                {
                    _routes[destination] = new Answer<RouteAnswer>(AskKernel(nl, destination), now);
                    _routesAsked.TryRemove(destination, out _);
                    published = true;
                }
                while (_neighborRequests.TryDequeue(out var n))
                {
                    published |= LookAtNeighbor(nl, n, now, asked: true);
                    _neighborsAsked.TryRemove(n, out _);
                }
                if (_waiting.Count > 0)
                    foreach (var n in _waiting.Keys.ToList())
                        published |= LookAtNeighbor(nl, n, now, asked: false);
                Trim(_routes, now);
                Trim(_neighbors, now);
            }
            catch (NativeException e)
            {
                _log($"warning: route and neighbour resolution: {e.Message}; trying again");
            }
            if (published)
                _answered();
        }
    }

    private static RouteAnswer AskKernel(RtNetlink nl, IpAddr destination)
    {
        var route = nl.GetRoute(destination.ToIPAddress(), out _);
        if (route == null || route.OutIfIndex == 0)
            return default;
        var hop = route.Gateway != null ? IpAddr.From(route.Gateway) : destination;
        var src = route.PreferredSource != null ? IpAddr.From(route.PreferredSource) : default;
        return new RouteAnswer(true, route.OutIfIndex, hop, src);
    }

    /// <summary>Reads a neighbour from the kernel and publishes what it has; probes it when unknown (rate-limited)
    /// and keeps looking while the wait lasts. True when a MAC was published that was not there before.</summary>
    private bool LookAtNeighbor(RtNetlink nl, (int IfIndex, IpAddr Address) n, long now, bool asked)
    {
        var entry = nl.GetNeighbor(n.IfIndex, n.Address.ToIPAddress());
        byte[]? mac = entry is { IsUsable: true } u ? u.Mac!.GetAddressBytes() : null;
        bool had = _neighbors.TryGetValue(n, out var before) && before.Value != null;
        _neighbors[n] = new Answer<byte[]?>(mac, now);
        if (mac != null)
        {
            _waiting.Remove(n);
            return !had || !before.Value!.AsSpan().SequenceEqual(mac);
        }
        if (asked && Probe(nl, n, now))
            _waiting[n] = now + _neighborWaitMs;
        else if (_waiting.TryGetValue(n, out long until) && now >= until)
            _waiting.Remove(n);
        return false;
    }

    private bool Probe(RtNetlink nl, (int IfIndex, IpAddr Address) n, long now)
    {
        if (_probedAt.TryGetValue(n, out long last) && now - last < 1000)
            return true; // probed within the second: keep looking, do not ask the kernel again
        if (now - _probeWindow >= 1000)
        {
            _probeWindow = now;
            _probesInWindow = 0;
        }
        if (_probesInWindow >= MaxProbesPerSecond)
        {
            Interlocked.Increment(ref ProbesLimited);
            return false;
        }
        _probesInWindow++;
        _probedAt[n] = now;
        if (_probedAt.Count > Capacity)
            foreach (var old in _probedAt.Where(kv => now - kv.Value >= 1000).Select(kv => kv.Key).ToList())
                _probedAt.Remove(old);
        nl.TriggerNeighborResolution(n.IfIndex, n.Address.ToIPAddress());
        return true;
    }

    /// <summary>Keeps at most <see cref="Capacity"/> answers: past it, a tenth goes, answers older than a second
    /// first (no sorting, nothing large allocated: this runs during floods of new destinations).</summary>
    private static void Trim<TKey, T>(ConcurrentDictionary<TKey, Answer<T>> answers, long now) where TKey : notnull
    {
        if (answers.Count <= Capacity)
            return;
        int target = Capacity - Capacity / 10;
        for (int pass = 0; pass < 2 && answers.Count > target; pass++)
            foreach (var kv in answers)
            {
                if (answers.Count <= target)
                    break;
                if (pass == 1 || now - kv.Value.AnsweredAt >= 1000)
                    answers.TryRemove(kv.Key, out _);
            }
    }

    public void Dispose()
    {
        _stop = true;
        _wake.Release();
        if (_thread.IsAlive && Thread.CurrentThread != _thread)
            _thread.Join();
        _wake.Dispose();
    }
}
