using System.Collections.Concurrent;
using System.Diagnostics;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Control;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;
using ZonLb.Engine.Services;
using ZonLb.Native.Abi;
using ZonLb.Native.Bpf;
using ZonLb.Native.Netlink;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// Control operations on a running data path, none of which stops it. Reads sum the workers' counters and read
/// the published service table; what needs a worker's own tables (its connections, its next hops) is asked of the
/// worker as a <see cref="WorkerCommand"/> it runs between batches, in bounded steps. Changes (backends, health,
/// reload) build the next version of the service table and publish it (<see cref="ServicePublisher"/>); the call
/// returns once every worker uses it. Changes run one at a time (the control lock, which no worker takes).
/// </summary>
internal sealed partial class Dataplane
{
    private readonly SemaphoreSlim _controlLock = new(1, 1);
    /// <summary>Held by whoever closes or replaces sockets (an interface deleted or back) and by readers of their
    /// statistics; never by a worker.</summary>
    private readonly object _socketsLock = new();
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private ServicePublisher? _publisher;

    /// <summary>Where the workers find the newest version of the service table.</summary>
    internal ServicePublisher Publisher => _publisher ?? throw new InvalidOperationException("the data path is not set up");

    /// <summary>The running services as the workers now see them.</summary>
    public ServiceTable Services => Publisher.Current;

    private ServiceRegistry R => _registry ?? throw new InvalidOperationException("the data path is not set up");

    private string IfName(int ifIndex) => _ports.FirstOrDefault(p => p.IfIndex == ifIndex)?.Name ?? $"ifindex {ifIndex}";

    /// <summary>Runs one command per worker on its tables and returns their results: queued to each running
    /// worker, or run here for a worker that has stopped (nothing else touches its tables then).</summary>
    private async Task<T[]> OnEveryWorker<T>(Func<WorkerCommand<T>> make)
    {
        var commands = new WorkerCommand<T>[_workers.Length];
        for (int i = 0; i < _workers.Length; i++)
        {
            var w = _workers[i];
            commands[i] = make();
            if (w.IsRunning)
                w.Post(commands[i]);
            else
                while (!commands[i].Step(w))
                {
                }
        }
        return await Task.WhenAll(commands.Select(c => c.Completion));
    }

    /// <summary>Makes a change to the services under the control lock and publishes the resulting version; returns
    /// when every worker forwards with it.</summary>
    private async Task<T> ChangeServices<T>(Func<ServiceRegistry, T> change)
    {
        await _controlLock.WaitAsync();
        try
        {
            T result = change(R);
            await PublishServices();
            return result;
        }
        finally
        {
            _controlLock.Release();
        }
    }

    private async Task PublishServices()
    {
        if (!await Publisher.PublishAsync(R.Snapshot(), _workers))
            _log($"warning: a worker took more than {ServicePublisher.AdoptionTimeout.TotalSeconds} s to move to the new services");
    }

    private int ServiceIndex(string name)
    {
        var services = Services.Services;
        for (int i = 0; i < services.Length; i++)
            if (services[i].Name == name && !services[i].Removed)
                return i;
        throw new InvalidOperationException($"no service named '{name}'");
    }

    // ---------------- backends ----------------

    /// <summary>backend add|remove|disable|enable on a running service; returns what was done once every worker
    /// forwards with the change.</summary>
    public async Task<string> ChangeBackend(string action, string service, System.Net.IPAddress address, ushort? port, int weight = 1)
    {
        ResolvedBackend? added = null;
        if (action == "add")
        {
            var sc = _config.Services.FirstOrDefault(s => s.Name == service) ?? throw new InvalidOperationException($"no service named '{service}'");
            using var nl = new RtNetlink();
            added = ServiceResolver.ResolveBackend(sc, new BackendConfig { Address = address, Port = port ?? sc.Port, Weight = weight }, nl);
        }
        else if (action is not ("remove" or "disable" or "enable"))
        {
            throw new InvalidOperationException($"unknown backend action '{action}' (add | remove | disable | enable)");
        }
        BackendStateChangedEventArgs? news = null;
        string result = await ChangeServices(r =>
        {
            int si = ServiceIndex(r, service);
            var ip = IpAddr.From(address);
            if (added is ResolvedBackend b)
            {
                int i = r.AddBackend(si, b);
                UpdateConfig(cfg => cfg.Services.First(x => x.Name == service).Backends.Add(new BackendConfig { Address = address, Port = b.Port, Weight = weight }));
                news = new BackendStateChangedEventArgs(service, address, b.Port, r.Services[si].Backends[i].State, "operator: add");
                return $"service {service}: backend {address}:{b.Port} added (index {i}, snat {b.Snat})";
            }
            var s = r.Services[si];
            int bi = port is ushort pt ? s.Find(ip, pt) : Array.FindIndex(s.Backends, x => x.Info.Ip == ip);
            if (bi < 0 || s.Backends[bi].Removed)
                throw new InvalidOperationException($"service {service} has no backend {address}{(port != null ? $":{port}" : "")}");
            r.UpdateBackend(si, bi, slot => action switch
            {
                "remove" => slot with { Removed = true },
                "disable" => slot with { Disabled = true },
                _ => slot with { Disabled = false },
            });
            var now = r.Services[si].Backends[bi];
            if (action == "remove")
                UpdateConfig(cfg => cfg.Services.First(x => x.Name == service).Backends
                    .RemoveAll(x => x.Address.Equals(address) && x.Port == now.Info.Port));
            _log($"service {service}: backend {address}:{now.Info.Port} {action}d by operator; now {now.State}");
            news = new BackendStateChangedEventArgs(service, address, now.Info.Port, now.State, $"operator: {action}");
            return $"service {service}: backend {address}:{now.Info.Port} {now.State} (active connections {now.Total.ActiveConnections} kept)";
        });
        if (added != null)
            SteerNatAddresses();
        if (news != null)
            BackendChanged?.Invoke(news);
        return result;
    }

    private static int ServiceIndex(ServiceRegistry r, string name)
    {
        for (int i = 0; i < r.Services.Count; i++)
            if (r.Services[i].Name == name && !r.Services[i].Removed)
                return i;
        throw new InvalidOperationException($"no service named '{name}'");
    }

    private void UpdateConfig(Action<LoadBalancerConfig> change) => change(_config);

    /// <summary>Tells the steering program every SNAT address (replies to its NAT ports are ours). Later fragments
    /// follow their first: the program remembers the datagrams whose first fragment it steered.</summary>
    private void SteerNatAddresses()
    {
        foreach (var (snat, proto) in Services.NatAddresses)
            _program!.AddNatAddress(snat.ToIPAddress(), proto.WireNumber(snat), _config.Engine.NatPortMin, _config.Engine.NatPortMax);
    }

    // ---------------- health ----------------

    private readonly ConcurrentDictionary<(string, int), string> _healthReasons = new();

    /// <summary>Told of every backend state change (health or operator), on the control plane's thread; it must
    /// only queue the news.</summary>
    internal Action<BackendStateChangedEventArgs>? BackendChanged;

    /// <summary>The backends to check now, from the published services and the configuration (no worker is asked).</summary>
    public List<(string Service, int Index, System.Net.IPAddress Address, ushort Port, HealthConfig Health)> HealthTargets()
    {
        var list = new List<(string, int, System.Net.IPAddress, ushort, HealthConfig)>();
        var cfg = _config;
        foreach (var s in Services.Services)
        {
            if (s.Removed)
                continue;
            var health = cfg.Services.FirstOrDefault(c => c.Name == s.Name)?.Health;
            if (health == null)
                continue;
            for (int i = 0; i < s.Backends.Length; i++)
                if (!s.Backends[i].Removed)
                    list.Add((s.Name, i, s.Backends[i].Info.Ip.ToIPAddress(), s.Backends[i].Info.Port, health));
        }
        return list;
    }

    /// <summary>Marks a backend up or down for new flows (the health checker calls this); with drain = false, a
    /// failed backend's connections are then dropped.</summary>
    public async Task<bool> SetBackendHealth(string service, int backend, bool up, string reason)
    {
        _healthReasons[(service, backend)] = reason;
        int si = -1;
        BackendSlot? now = null;
        bool changed = await ChangeServices(r =>
        {
            si = ServiceIndex(r, service);
            if (r.Services[si].Backends[backend].Unhealthy != up)
                return false;
            r.UpdateBackend(si, backend, b => b with { Unhealthy = !up });
            now = r.Services[si].Backends[backend];
            return true;
        });
        if (!changed)
            return false;
        BackendChanged?.Invoke(new BackendStateChangedEventArgs(service, now!.Info.Ip.ToIPAddress(), now.Info.Port, now.State, reason));
        if (!up && !(_config.Services.FirstOrDefault(x => x.Name == service)?.Health?.Drain ?? true))
        {
            var reset = await OnEveryWorker(() => new FlushConnections(c => c.ServiceIndex == si && c.BackendIndex == backend));
            _log($"service {service}: {reset.Sum()} connection(s) to the failed backend dropped (drain = false)");
        }
        return true;
    }

    // ---------------- reload ----------------

    /// <summary>Applies a new configuration without detaching XDP or dropping established connections. Interfaces
    /// and engine sizes cannot change this way. Returns a summary of the changes once every worker forwards with
    /// them.</summary>
    public async Task<string> Reload(LoadBalancerConfig next)
    {
        var notes = new List<string>();
        if (!next.Interfaces.Select(i => i.Name).SequenceEqual(_config.Interfaces.Select(i => i.Name)))
            throw new InvalidOperationException("the interfaces changed; restart zonlb-afxdp to apply that");
        string before = ConfigWriter.Write(new LoadBalancerConfig { Engine = _config.Engine }), after = ConfigWriter.Write(new LoadBalancerConfig { Engine = next.Engine });
        if (before != after)
            notes.Add("[engine] settings changed: restart to apply them");

        // Resolve everything (netlink) before touching the running services, so a failure changes nothing.
        using var nl = new RtNetlink();
        var resolved = new Dictionary<string, ResolvedService>();
        foreach (var sc in next.Services)
            resolved[sc.Name] = ServiceResolver.Resolve(sc, _config.Engine, nl, _workers.Length);

        var removedKeys = new List<ServiceKey>();
        var addedKeys = new List<ServiceKey>();
        var changes = await ChangeServices(r =>
        {
            var done = new List<string>();
            int count = r.Services.Count;
            for (int i = 0; i < count; i++)
            {
                var old = r.Services[i];
                if (old.Removed)
                    continue;
                if (!resolved.TryGetValue(old.Name, out var fresh) || !fresh.Key.Equals(old.Key))
                {
                    r.Remove(i);
                    removedKeys.Add(old.Key);
                    done.Add($"service {old.Name} removed ({old.Total.ActiveConnections} connection(s) drain)");
                    continue;
                }
                // same service: reconcile backends by address and port
                foreach (var nb in fresh.Backends)
                {
                    int bi = r.Services[i].Find(nb.Info.Ip, nb.Info.Port);
                    if (bi < 0 || r.Services[i].Backends[bi].Removed)
                    {
                        r.AddBackend(i, nb.Info);
                        done.Add($"service {old.Name}: backend {nb.Info.Identity} added");
                    }
                    else if (r.Services[i].Backends[bi].Info != nb.Info)
                    {
                        r.AddBackend(i, nb.Info);
                        done.Add($"service {old.Name}: backend {nb.Info.Identity} changed (weight {nb.Info.Weight}, snat {nb.Info.Snat})");
                    }
                }
                var current = r.Services[i];
                for (int bi = 0; bi < current.Backends.Length; bi++)
                {
                    var ob = current.Backends[bi];
                    if (!ob.Removed && fresh.Find(ob.Info.Ip, ob.Info.Port) < 0)
                    {
                        r.UpdateBackend(i, bi, b => b with { Removed = true });
                        done.Add($"service {old.Name}: backend {ob.Info.Identity} removed ({ob.Total.ActiveConnections} connection(s) drain)");
                    }
                }
            }
            foreach (var sc in next.Services)
            {
                if (r.Services.Any(x => !x.Removed && x.Name == sc.Name))
                    continue;
                var fresh = resolved[sc.Name];
                r.Add(fresh);
                addedKeys.Add(fresh.Key);
                done.Add($"service {sc.Name} added");
            }
            next.Engine = _config.Engine;
            _config = next;
            return done;
        });
        // the steering program follows: new services and SNAT addresses steered, removed services passed
        foreach (var k in addedKeys)
            _program!.AddService(k.Vip.ToIPAddress(), k.Protocol.WireNumber(k.Vip), k.Port);
        foreach (var k in removedKeys.Where(k => !addedKeys.Contains(k)))
            _program!.RemoveService(k.Vip.ToIPAddress(), k.Protocol.WireNumber(k.Vip), k.Port);
        SteerNatAddresses();
        changes.AddRange(notes);
        string summary = changes.Count == 0 ? "reloaded: no changes" : "reloaded: " + string.Join("; ", changes);
        _log(summary);
        return summary;
    }
}
