using System.Collections.Concurrent;
using System.Diagnostics;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Control;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Routing;
using ZonLb.Native.Bpf;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// Control operations on a running data path. The worker thread owns every table, so each operation is queued
/// to it and runs between two batches (at most one poll interval later); the caller awaits the result. Nothing
/// here takes a lock on the hot path.
/// </summary>
public sealed partial class Dataplane
{
    private readonly ConcurrentQueue<Action> _controlWork = new();
    private readonly Stopwatch _uptime = Stopwatch.StartNew();

    /// <summary>Runs f on the worker thread (directly when the worker is not running) and returns its result.</summary>
    public Task<T> Invoke<T>(Func<T> f)
    {
        if (!IsRunning)
        {
            try
            {
                return Task.FromResult(f());
            }
            catch (Exception e)
            {
                return Task.FromException<T>(e);
            }
        }
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _controlWork.Enqueue(() =>
        {
            try
            {
                tcs.SetResult(f());
            }
            catch (Exception e)
            {
                tcs.SetException(e);
            }
        });
        return tcs.Task;
    }

    private int RunControlWork()
    {
        int n = 0;
        while (_controlWork.TryDequeue(out var work))
        {
            work();
            n++;
        }
        return n;
    }

    /// <summary>The running services; read on the worker thread only (inside <see cref="Invoke{T}"/>).</summary>
    public IReadOnlyList<ResolvedService> RunningServices => P.Services;

    private PacketProcessor P => _processor ?? throw new InvalidOperationException("the data path is not set up");

    private static string Ip(uint a) => KernelRouteSource.ToAddress(a).ToString();

    private string IfName(int ifIndex) => _ports.FirstOrDefault(p => p.IfIndex == ifIndex)?.Name ?? $"ifindex {ifIndex}";

    // ---------------- reports ----------------

    public Task<StatusReport> GetStatus() => Invoke(() => new StatusReport(
        typeof(Dataplane).Assembly.GetName().Version?.ToString() ?? "0",
        (long)_uptime.Elapsed.TotalSeconds,
        _config.Source,
        _ports.Select(p => new InterfaceReport(p.Name, p.IfIndex, p.AttachedMode.ToString().ToLowerInvariant(), p.Sockets.Count, p.Sockets[0].ZeroCopy)).ToList(),
        P.Services.Count(s => !s.Removed),
        P.Connections.Count,
        P.Connections.Capacity,
        TotalFrames,
        FreeFrames));

    public Task<StatsReport> GetStats() => Invoke(() =>
    {
        var c = Counters;
        var services = P.Services.Select(s => new ServiceReport(
            s.Name, Ip(s.Vip), s.Protocol.ToString().ToLowerInvariant(), s.Port, s.Removed, s.NewConnections, s.ActiveConnections,
            DropTable(s.Drops),
            s.Backends.Select((b, i) => new BackendReport(
                Ip(b.Info.Ip), b.Info.Port, Ip(b.Info.SnatIp), b.Info.Weight, b.State, _healthReasons.GetValueOrDefault((s.Name, i)),
                b.PacketsToBackend, b.BytesToBackend, b.PacketsToClient, b.BytesToClient, b.NewConnections, b.ActiveConnections)).ToList())).ToList();
        var xdp = new Dictionary<string, ulong>
        {
            ["seen"] = XdpCounter(XdpProgramCounter.Seen),
            ["redirected"] = XdpCounter(XdpProgramCounter.Redirected),
            ["passed"] = XdpCounter(XdpProgramCounter.Passed),
            ["no_socket"] = XdpCounter(XdpProgramCounter.NoSocket),
        };
        return new StatsReport(c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes, c.ToBackend, c.ToClient, c.NewConnections,
            P.Connections.Count, c.ExpiredConnections, c.PartialChecksumsRepaired, c.Held, c.TxKicks, c.TxKickErrors,
            DropTable(c.Drops), xdp, services);
    });

    private static Dictionary<string, long> DropTable(Func<DropReason, long> count)
    {
        var d = new Dictionary<string, long>();
        for (int i = 1; i < DropReasonNames.Count; i++)
        {
            long n = count((DropReason)i);
            if (n != 0)
                d[((DropReason)i).ToLabel()] = n;
        }
        return d;
    }

    public Task<List<ConnectionReport>> ListConnections(string? service, int limit) => Invoke(() =>
    {
        long now = Environment.TickCount64;
        var list = new List<ConnectionReport>();
        var table = P.Connections;
        for (int i = 0; i < table.Capacity && list.Count < limit; i++)
        {
            var c = table[i];
            if (!c.InUse)
                continue;
            var s = P.Services[c.ServiceIndex];
            if (service != null && s.Name != service)
                continue;
            string proto = c.Protocol.ToString().ToLowerInvariant();
            string state = c.Protocol == Packets.IpProtocol.Tcp ? c.TcpState.ToString().ToUpperInvariant() : c.Replied ? "REPLIED" : "UNREPLIED";
            list.Add(new ConnectionReport(s.Name, proto, $"{Ip(c.ClientIp)}:{c.ClientPort}", $"{Ip(c.VipIp)}:{c.VipPort}",
                $"{Ip(c.BackendIp)}:{c.BackendPort}", $"{Ip(c.SnatIp)}:{c.NatPort}", state, now - c.LastSeen));
        }
        return list;
    });

    public Task<int> FlushConnections(string? service) => Invoke(() =>
    {
        int serviceIndex = service == null ? -1 : ServiceIndex(service);
        return P.FlushConnections(serviceIndex < 0 ? null : c => c.ServiceIndex == serviceIndex);
    });

    public Task<List<NextHopReport>> ListNextHops() => Invoke(() =>
    {
        long now = Environment.TickCount64;
        return P.NextHops.Entries.Select(e => new NextHopReport(
            Ip(e.Key), IfName(e.Value.IfIndex), e.Value.IfIndex, Ip(e.Value.Gateway),
            e.Value.State == NextHopState.Resolved
                ? $"{e.Value.Mac0:x2}:{e.Value.Mac1:x2}:{e.Value.Mac2:x2}:{e.Value.Mac3:x2}:{e.Value.Mac4:x2}:{e.Value.Mac5:x2}"
                : null,
            e.Value.State.ToString().ToLowerInvariant(), e.Value.RefreshAt - now)).ToList();
    });

    private int ServiceIndex(string name)
    {
        for (int i = 0; i < P.Services.Count; i++)
            if (P.Services[i].Name == name && !P.Services[i].Removed)
                return i;
        throw new InvalidOperationException($"no service named '{name}'");
    }

    // ---------------- backends ----------------

    /// <summary>backend add|remove|disable|enable on a running service; returns what was done.</summary>
    public async Task<string> ChangeBackend(string action, string service, System.Net.IPAddress address, ushort? port, int weight = 1)
    {
        ResolvedBackend? added = null;
        if (action == "add")
        {
            var sc = _config.Services.FirstOrDefault(s => s.Name == service) ?? throw new InvalidOperationException($"no service named '{service}'");
            using var nl = new RtNetlink();
            added = ServiceResolver.ResolveBackend(sc, new BackendConfig { Address = address, Port = port ?? sc.Port, Weight = weight }, nl);
        }
        return await Invoke(() =>
        {
            int si = ServiceIndex(service);
            var s = P.Services[si];
            uint ip = KernelRouteSource.FromAddress(address);
            if (added is ResolvedBackend b)
            {
                int i = P.AddBackend(si, b);
                SteerNatAddresses();
                UpdateConfig(cfg => cfg.Services.First(x => x.Name == service).Backends.Add(new BackendConfig { Address = address, Port = b.Port, Weight = weight }));
                return $"service {service}: backend {address}:{b.Port} added (index {i}, snat {Ip(b.SnatIp)})";
            }
            int bi = port is ushort pt ? s.Find(ip, pt) : s.Backends.FindIndex(x => x.Info.Ip == ip);
            if (bi < 0 || s.Backends[bi].Removed)
                throw new InvalidOperationException($"service {service} has no backend {address}{(port != null ? $":{port}" : "")}");
            var slot = s.Backends[bi];
            switch (action)
            {
                case "remove":
                    slot.Removed = true;
                    UpdateConfig(cfg => cfg.Services.First(x => x.Name == service).Backends
                        .RemoveAll(x => x.Address.Equals(address) && x.Port == slot.Info.Port));
                    break;
                case "disable":
                    slot.Disabled = true;
                    break;
                case "enable":
                    slot.Disabled = false;
                    break;
                default:
                    throw new InvalidOperationException($"unknown backend action '{action}' (add | remove | disable | enable)");
            }
            s.Rebuild();
            _log($"service {service}: backend {address}:{slot.Info.Port} {action}d by operator; now {slot.State}");
            return $"service {service}: backend {address}:{slot.Info.Port} {slot.State} (active connections {slot.ActiveConnections} kept)";
        });
    }

    private void UpdateConfig(Action<LoadBalancerConfig> change) => change(_config);

    private void SteerNatAddresses()
    {
        foreach (var (snat, proto) in P.NatAddresses)
            _program!.AddNatAddress(KernelRouteSource.ToAddress(snat), (byte)proto, _config.Engine.NatPortMin, _config.Engine.NatPortMax);
    }

    // ---------------- health ----------------

    private readonly Dictionary<(string, int), string> _healthReasons = new();

    /// <summary>Marks a backend up or down for new flows (the health checker calls this).</summary>
    public Task<bool> SetBackendHealth(string service, int backend, bool up, string reason) => Invoke(() =>
    {
        int si = ServiceIndex(service);
        var s = P.Services[si];
        _healthReasons[(service, backend)] = reason;
        bool changed = s.Backends[backend].Unhealthy == up;
        s.SetOut(backend, !up);
        if (changed && !up && !(_config.Services.FirstOrDefault(x => x.Name == service)?.Health?.Drain ?? true))
        {
            int reset = P.FlushConnections(c => c.ServiceIndex == si && c.BackendIndex == backend);
            _log($"service {service}: {reset} connection(s) to the failed backend dropped (drain = false)");
        }
        return changed;
    });

    // ---------------- reload ----------------

    /// <summary>Applies a new configuration without detaching XDP or dropping established connections. Interfaces
    /// and engine sizes cannot change this way. Returns a summary of the changes.</summary>
    public async Task<string> Reload(LoadBalancerConfig next)
    {
        var notes = new List<string>();
        if (!next.Interfaces.Select(i => i.Name).SequenceEqual(_config.Interfaces.Select(i => i.Name)))
            throw new InvalidOperationException("the interfaces changed; restart zonlb-afxdp to apply that");
        foreach (var p in typeof(EngineOptions).GetProperties())
            if (!Equals(p.GetValue(next.Engine), p.GetValue(_config.Engine)))
                notes.Add($"engine {p.Name} changed: restart to apply");

        // Resolve everything (netlink) before touching the running tables, so a failure changes nothing.
        using var nl = new RtNetlink();
        var resolved = new Dictionary<string, ResolvedService>();
        foreach (var sc in next.Services)
            resolved[sc.Name] = ServiceResolver.Resolve(sc, _config.Engine, nl);

        var changes = await Invoke(() =>
        {
            var done = new List<string>();
            var running = P.Services;
            for (int i = 0; i < running.Count; i++)
            {
                var old = running[i];
                if (old.Removed)
                    continue;
                if (!resolved.TryGetValue(old.Name, out var fresh) || !fresh.Key.Equals(old.Key))
                {
                    P.RemoveService(i);
                    _program!.RemoveService(KernelRouteSource.ToAddress(old.Vip), (byte)old.Protocol, old.Port);
                    done.Add($"service {old.Name} removed ({old.ActiveConnections} connection(s) drain)");
                    continue;
                }
                // same service: reconcile backends by address and port
                foreach (var nb in fresh.Backends)
                {
                    int bi = old.Find(nb.Info.Ip, nb.Info.Port);
                    if (bi < 0 || old.Backends[bi].Removed)
                    {
                        P.AddBackend(i, nb.Info);
                        done.Add($"service {old.Name}: backend {nb.Info.Identity} added");
                    }
                    else if (old.Backends[bi].Info != nb.Info)
                    {
                        old.Backends[bi].Info = nb.Info;
                        P.AddBackend(i, nb.Info);
                        done.Add($"service {old.Name}: backend {nb.Info.Identity} changed (weight {nb.Info.Weight}, snat {Ip(nb.Info.SnatIp)})");
                    }
                }
                foreach (var ob in old.Backends)
                {
                    if (!ob.Removed && fresh.Find(ob.Info.Ip, ob.Info.Port) < 0)
                    {
                        ob.Removed = true;
                        done.Add($"service {old.Name}: backend {ob.Info.Identity} removed ({ob.ActiveConnections} connection(s) drain)");
                    }
                }
                old.Rebuild();
            }
            foreach (var sc in next.Services)
            {
                if (running.Any(r => !r.Removed && r.Name == sc.Name))
                    continue;
                var fresh = resolved[sc.Name];
                P.AddService(fresh);
                _program!.AddService(KernelRouteSource.ToAddress(fresh.Vip), (byte)fresh.Protocol, fresh.Port);
                done.Add($"service {sc.Name} added");
            }
            SteerNatAddresses();
            next.Engine = _config.Engine;
            _config = next;
            return done;
        });
        changes.AddRange(notes);
        string summary = changes.Count == 0 ? "reloaded: no changes" : "reloaded: " + string.Join("; ", changes);
        _log(summary);
        return summary;
    }
}
