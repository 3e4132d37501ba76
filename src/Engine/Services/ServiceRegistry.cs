using System.Collections.Concurrent;
using ZonLb.Engine.Flows;

namespace ZonLb.Engine.Services;

/// <summary>
/// The control plane's side of the running services: where changes are made (services and backends added,
/// removed, taken out or brought back), each producing new immutable services, and from which a version of the
/// service table is cut for the workers (<see cref="Snapshot"/>). Not thread-safe: the control plane makes one
/// change at a time. The workers never see this object, only the tables cut from it.
/// </summary>
internal sealed class ServiceRegistry
{
    private readonly List<ResolvedService> _services = new();
    private long _version;

    public ServiceRegistry(int workers, ushort natPortMin, ushort natPortMax)
    {
        if (workers < 1)
            throw new ArgumentOutOfRangeException(nameof(workers), workers, "at least one worker");
        Workers = workers;
        NatPortMin = natPortMin;
        NatPortMax = natPortMax;
    }

    public int Workers { get; }
    public ushort NatPortMin { get; }
    public ushort NatPortMax { get; }

    /// <summary>Shared by every version (see <see cref="ServiceTable.FragmentOwners"/>).</summary>
    public ConcurrentDictionary<FragmentKey, int> FragmentOwners { get; } = new();

    /// <summary>Every service of this run, by index, as now changed.</summary>
    public IReadOnlyList<ResolvedService> Services => _services;

    /// <summary>The next version of the service table, for the workers to move to.</summary>
    public ServiceTable Snapshot() => new(++_version, Workers, NatPortMin, NatPortMax, _services.ToArray(), FragmentOwners);

    public int Add(ResolvedService s)
    {
        if (s.Workers != Workers)
            throw new ArgumentException($"service {s.Name} was built for {s.Workers} worker(s), the registry has {Workers}");
        if (_services.Any(x => !x.Removed && x.Key == s.Key))
            throw new InvalidOperationException($"service {s.Name}: {s.Key} is already served");
        _services.Add(s);
        return _services.Count - 1;
    }

    /// <summary>Stops a service from taking new flows; its connections drain.</summary>
    public void Remove(int index) => _services[index] = _services[index].AsRemoved();

    /// <summary>Adds a backend to a service (or revives a removed one at the same address and port, with this
    /// information); returns its index.</summary>
    public int AddBackend(int serviceIndex, ResolvedBackend b)
    {
        var s = _services[serviceIndex];
        int i = s.Find(b.Ip, b.Port);
        if (i >= 0)
        {
            _services[serviceIndex] = s.WithBackend(i, s.Backends[i] with { Info = b, Removed = false });
            return i;
        }
        _services[serviceIndex] = s.WithBackendAdded(b);
        return s.Backends.Length;
    }

    /// <summary>Replaces a backend's slot with a changed one (taken out, brought back, removed).</summary>
    public void UpdateBackend(int serviceIndex, int backend, Func<BackendSlot, BackendSlot> change)
    {
        var s = _services[serviceIndex];
        _services[serviceIndex] = s.WithBackend(backend, change(s.Backends[backend]));
    }
}
