using System.Collections.Concurrent;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Flows;

/// <summary>The fragments of one datagram: source, destination, protocol and IP identification.</summary>
internal readonly record struct FragmentKey(IpAddr Src, IpAddr Dst, uint Id, IpProtocol Protocol);

/// <summary>What a datagram's first fragment decided for the later ones: its connection and direction.</summary>
internal readonly record struct FragmentRoute(int Connection, bool ToBackend, long Expires);

/// <summary>
/// One worker's datagrams whose first fragment it forwarded: where their later fragments (which carry no ports)
/// go. Bounded (<see cref="Capacity"/>) and expiring (<see cref="LifetimeMs"/>). With several workers, each entry
/// is also published in the owners map every worker reads, so that a later fragment that arrives at another
/// worker is handed to this one.
/// </summary>
internal sealed class FragmentTable
{
    public const int Capacity = 4096;
    public const long LifetimeMs = 5000;

    private readonly Dictionary<FragmentKey, FragmentRoute> _routes = new();
    private readonly ConcurrentDictionary<FragmentKey, int>? _owners;
    private readonly int _worker;
    private readonly List<FragmentKey> _expired = new();

    /// <param name="owners">The map shared by all workers (datagram to worker), or null for a single worker.</param>
    public FragmentTable(int worker, ConcurrentDictionary<FragmentKey, int>? owners)
    {
        _worker = worker;
        _owners = owners;
    }

    public int Count => _routes.Count;

    /// <summary>Remembers a first fragment's decision; false when the table is full of live datagrams (their later
    /// fragments then wait, and are dropped as <c>fragment</c>).</summary>
    public bool Remember(in FragmentKey key, int connection, bool toBackend, long now)
    {
        if (_routes.Count >= Capacity && !_routes.ContainsKey(key))
        {
            Expire(now);
            if (_routes.Count >= Capacity)
                return false;
        }
        _routes[key] = new FragmentRoute(connection, toBackend, now + LifetimeMs);
        if (_owners != null)
            _owners[key] = _worker;
        return true;
    }

    /// <summary>The route of a later fragment's datagram, if its first fragment was seen and has not expired.</summary>
    public bool TryGet(in FragmentKey key, long now, out FragmentRoute route) =>
        _routes.TryGetValue(key, out route) && now < route.Expires;

    /// <summary>Forgets datagrams whose first fragment is older than the lifetime.</summary>
    public void Expire(long now)
    {
        if (_routes.Count == 0)
            return;
        foreach (var (key, route) in _routes)
            if (now >= route.Expires)
                _expired.Add(key);
        foreach (var key in _expired)
        {
            _routes.Remove(key);
            _owners?.TryRemove(key, out _);
        }
        _expired.Clear();
    }
}
