using System.Collections.Concurrent;
using System.Diagnostics;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Control;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;
using ZonLb.Native.Abi;
using ZonLb.Native.Bpf;
using ZonLb.Native.Xsk;
using ZonLb.Native.Netlink;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// Control operations on a running data path. The worker thread owns every table, so each operation is queued
/// to it and runs between two batches (at most one poll interval later); the caller awaits the result. Nothing
/// here takes a lock on the hot path.
/// </summary>
internal sealed partial class Dataplane
{
    private readonly SemaphoreSlim _controlLock = new(1, 1);
    private readonly ManualResetEventSlim _resume = new(true);
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private volatile bool _pauseRequested;
    private int _parked;

    /// <summary>
    /// Runs f with every worker parked between two batches (at most one poll interval later), so f sees and
    /// changes the tables alone; the workers take no locks on the hot path. Control calls run one at a time.
    /// </summary>
    public async Task<T> Invoke<T>(Func<T> f)
    {
        await _controlLock.WaitAsync();
        try
        {
            // workers released by the previous call must have left their park first
            while (Volatile.Read(ref _parked) > 0)
                await Task.Delay(1);
            if (!IsRunning)
                return f();
            _resume.Reset();
            _pauseRequested = true;
            foreach (var w in _workers)
                w.Wakeup.Signal();
            while (Volatile.Read(ref _parked) < Volatile.Read(ref _alive))
                await Task.Delay(1);
            try
            {
                return f();
            }
            finally
            {
                _pauseRequested = false;
                _resume.Set();
            }
        }
        finally
        {
            _controlLock.Release();
        }
    }

    /// <summary>Called by each worker once per round: waits while control work runs.</summary>
    internal void ParkIfAsked()
    {
        if (!_pauseRequested)
            return;
        Interlocked.Increment(ref _parked);
        _resume.Wait();
        Interlocked.Decrement(ref _parked);
    }

    /// <summary>The running services (read inside <see cref="Invoke{T}"/>).</summary>
    public IReadOnlyList<ResolvedService> RunningServices => R.Services;

    private ServiceRegistry R => _registry ?? throw new InvalidOperationException("the data path is not set up");

    private IEnumerable<PacketProcessor> Processors => _workers.Select(w => w.Processor);

    private string IfName(int ifIndex) => _ports.FirstOrDefault(p => p.IfIndex == ifIndex)?.Name ?? $"ifindex {ifIndex}";

    // ---------------- reports ----------------

    public Task<StatusReport> GetStatus() => Invoke(() => new StatusReport(
        typeof(Dataplane).Assembly.GetName().Version?.ToString() ?? "0",
        (long)_uptime.Elapsed.TotalSeconds,
        _config.Source,
        _ports.Select(p => new InterfaceReport(p.Name, p.IfIndex, p.AttachedMode.ToString().ToLowerInvariant(), p.Sockets.Count,
            p.Sockets.Count > 0 && p.Sockets[0].ZeroCopy, p.Missing ? "deleted" : p.Down ? "down" : "up")).ToList(),
        R.Services.Count(s => !s.Removed),
        ActiveConnections,
        Processors.Sum(p => p.Connections.Capacity),
        TotalFrames,
        FreeFrames,
        GC.GetTotalMemory(false),
        Environment.WorkingSet,
        GC.CollectionCount(2)));

    public Task<StatsReport> GetStats() => Invoke(() =>
    {
        var c = Counters;
        var services = R.Services.Select(s =>
        {
            var t = s.Total;
            return new ServiceReport(
                s.Name, s.Vip.ToString(), s.Protocol.ToString().ToLowerInvariant(), s.Port, s.Removed, t.NewConnections, t.ActiveConnections,
                DropTable(r => t.Drops[(int)r]),
                s.Backends.Select((b, i) =>
                {
                    var bt = b.Total;
                    return new BackendReport(
                        b.Info.Ip.ToString(), b.Info.Port, s.Dsr ? "dsr" : b.Info.SnatIp.ToString(), b.Info.Weight, b.State, _healthReasons.GetValueOrDefault((s.Name, i)),
                        bt.PacketsToBackend, bt.BytesToBackend, bt.PacketsToClient, bt.BytesToClient, bt.NewConnections, bt.ActiveConnections);
                }).ToList());
        }).ToList();
        var xdp = new Dictionary<string, ulong>
        {
            ["seen"] = XdpCounter(XdpProgramCounter.Seen),
            ["redirected"] = XdpCounter(XdpProgramCounter.Redirected),
            ["passed"] = XdpCounter(XdpProgramCounter.Passed),
            ["no_socket"] = XdpCounter(XdpProgramCounter.NoSocket),
        };
        var workers = _workers.Select(w => new WorkerReport(w.Index, w.Cpu,
            w.Owned.Select(s => $"{s.InterfaceName}:{s.QueueId}").ToList(), w.Counters.RxPackets, w.Counters.TxPackets,
            w.Counters.HandedOff, w.Processor.Connections.Count)).ToList();
        var sockets = SocketStatistics().Select(x => new SocketReport(x.Socket.InterfaceName, x.Socket.QueueId, x.Worker,
            x.Stats.RxDropped, x.Stats.RxInvalidDescs, x.Stats.TxInvalidDescs, x.Stats.RxRingFull, x.Stats.RxFillRingEmptyDescs,
            x.Stats.TxRingEmptyDescs, Diagnostics.SocketHints.NonZero(x.Stats))).ToList();
        var interfaces = _ports.Select(p => new InterfaceCountersReport(p.Name,
            Native.Ethtool.EthtoolStats.Read(p.Name).Where(kv => kv.Key.Contains("xdp", StringComparison.Ordinal) || kv.Key.Contains("drop", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => kv.Value))).ToList();
        return new StatsReport(c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes, c.ToBackend, c.ToClient, c.NewConnections,
            ActiveConnections, c.ExpiredConnections, c.PartialChecksumsRepaired, c.Held, c.HandedOff, c.TxKicks, c.TxKickErrors,
            DropTable(c.Drops), xdp, workers, sockets, interfaces, services)
        {
            RxMultiBuffer = c.RxMultiBuffer, EarlyDrops = c.EarlyDrops, NatPortsReused = c.NatPortsReused,
        };
    });

    /// <summary>The kernel's XDP_STATISTICS of every socket. Call it inside <see cref="Invoke{T}"/>: sockets are
    /// closed and replaced under the same pause when an interface is deleted or comes back.</summary>
    public List<(XskSocket Socket, int Worker, XdpStatistics Stats)> SocketStatistics()
    {
        var list = new List<(XskSocket, int, XdpStatistics)>();
        foreach (var w in _workers)
            foreach (var s in w.Owned)
                list.Add((s, w.Index, s.GetStatistics()));
        return list;
    }

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
        foreach (var p in Processors)
        for (int i = 0; i < p.Connections.Capacity && list.Count < limit; i++)
        {
            var c = p.Connections[i];
            if (!c.InUse)
                continue;
            var s = R.Services[c.ServiceIndex];
            if (service != null && s.Name != service)
                continue;
            string proto = c.Protocol.ToString().ToLowerInvariant();
            string state = c.Protocol == Packets.IpProtocol.Tcp ? c.TcpState.ToString().ToUpperInvariant() : c.Replied ? "REPLIED" : "UNREPLIED";
            list.Add(new ConnectionReport(s.Name, proto, c.ClientIp.WithPort(c.ClientPort), c.VipIp.WithPort(c.VipPort),
                c.BackendIp.WithPort(c.BackendPort), c.Dsr ? "dsr" : c.SnatIp.WithPort(c.NatPort), state, now - c.LastSeen));
        }
        return list;
    });

    public Task<int> FlushConnections(string? service) => Invoke(() =>
    {
        int serviceIndex = service == null ? -1 : ServiceIndex(service);
        return Processors.Sum(p => p.FlushConnections(serviceIndex < 0 ? null : c => c.ServiceIndex == serviceIndex));
    });

    public Task<List<NextHopReport>> ListNextHops() => Invoke(() =>
    {
        long now = Environment.TickCount64;
        return Processors.SelectMany(p => p.NextHops.Entries).DistinctBy(e => e.Key).Select(e => new NextHopReport(
            e.Key.ToString(), IfName(e.Value.IfIndex), e.Value.IfIndex, e.Value.Gateway.ToString(),
            e.Value.State == NextHopState.Resolved
                ? e.Value.MacText
                : null,
            e.Value.State.ToString().ToLowerInvariant(), e.Value.RefreshAt - now)).ToList();
    });

    private int ServiceIndex(string name)
    {
        for (int i = 0; i < R.Services.Count; i++)
            if (R.Services[i].Name == name && !R.Services[i].Removed)
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
            var s = R.Services[si];
            var ip = IpAddr.From(address);
            if (added is ResolvedBackend b)
            {
                int i = R.AddBackend(si, b);
                SteerNatAddresses();
                UpdateConfig(cfg => cfg.Services.First(x => x.Name == service).Backends.Add(new BackendConfig { Address = address, Port = b.Port, Weight = weight }));
                BackendChanged?.Invoke(new BackendStateChangedEventArgs(service, address, b.Port, s.Backends[i].State, "operator: add"));
                return $"service {service}: backend {address}:{b.Port} added (index {i}, snat {b.SnatIp})";
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
            BackendChanged?.Invoke(new BackendStateChangedEventArgs(service, address, slot.Info.Port, slot.State, $"operator: {action}"));
            return $"service {service}: backend {address}:{slot.Info.Port} {slot.State} (active connections {slot.Total.ActiveConnections} kept)";
        });
    }

    private void UpdateConfig(Action<LoadBalancerConfig> change) => change(_config);

    private void SteerNatAddresses()
    {
        foreach (var (snat, proto) in R.NatAddresses)
        {
            _program!.AddNatAddress(snat.ToIPAddress(), proto.WireNumber(snat), _config.Engine.NatPortMin, _config.Engine.NatPortMax);
            _program.AddFragmentAddress(snat.ToIPAddress());
        }
        foreach (var s in R.Services)
            _program!.AddFragmentAddress(s.Vip.ToIPAddress());
    }

    // ---------------- health ----------------

    private readonly Dictionary<(string, int), string> _healthReasons = new();

    /// <summary>Told of every backend state change (health or operator); called with the workers parked, so it
    /// must only queue the news.</summary>
    internal Action<BackendStateChangedEventArgs>? BackendChanged;

    /// <summary>Marks a backend up or down for new flows (the health checker calls this).</summary>
    public Task<bool> SetBackendHealth(string service, int backend, bool up, string reason) => Invoke(() =>
    {
        int si = ServiceIndex(service);
        var s = R.Services[si];
        _healthReasons[(service, backend)] = reason;
        bool changed = s.Backends[backend].Unhealthy == up;
        s.SetOut(backend, !up);
        if (changed)
        {
            var b = s.Backends[backend];
            BackendChanged?.Invoke(new BackendStateChangedEventArgs(service, b.Info.Ip.ToIPAddress(), b.Info.Port, b.State, reason));
        }
        if (changed && !up && !(_config.Services.FirstOrDefault(x => x.Name == service)?.Health?.Drain ?? true))
        {
            int reset = Processors.Sum(p => p.FlushConnections(c => c.ServiceIndex == si && c.BackendIndex == backend));
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
        string before = ConfigWriter.Write(new LoadBalancerConfig { Engine = _config.Engine }), after = ConfigWriter.Write(new LoadBalancerConfig { Engine = next.Engine });
        if (before != after)
            notes.Add("[engine] settings changed: restart to apply them");

        // Resolve everything (netlink) before touching the running tables, so a failure changes nothing.
        using var nl = new RtNetlink();
        var resolved = new Dictionary<string, ResolvedService>();
        foreach (var sc in next.Services)
            resolved[sc.Name] = ServiceResolver.Resolve(sc, _config.Engine, nl, _workers.Length);

        var changes = await Invoke(() =>
        {
            var done = new List<string>();
            var running = R.Services;
            for (int i = 0; i < running.Count; i++)
            {
                var old = running[i];
                if (old.Removed)
                    continue;
                if (!resolved.TryGetValue(old.Name, out var fresh) || !fresh.Key.Equals(old.Key))
                {
                    R.Remove(i);
                    _program!.RemoveService(old.Vip.ToIPAddress(), old.Protocol.WireNumber(old.Vip), old.Port);
                    done.Add($"service {old.Name} removed ({old.Total.ActiveConnections} connection(s) drain)");
                    continue;
                }
                // same service: reconcile backends by address and port
                foreach (var nb in fresh.Backends)
                {
                    int bi = old.Find(nb.Info.Ip, nb.Info.Port);
                    if (bi < 0 || old.Backends[bi].Removed)
                    {
                        R.AddBackend(i, nb.Info);
                        done.Add($"service {old.Name}: backend {nb.Info.Identity} added");
                    }
                    else if (old.Backends[bi].Info != nb.Info)
                    {
                        R.AddBackend(i, nb.Info);
                        done.Add($"service {old.Name}: backend {nb.Info.Identity} changed (weight {nb.Info.Weight}, snat {nb.Info.SnatIp.ToString()})");
                    }
                }
                foreach (var ob in old.Backends)
                {
                    if (!ob.Removed && fresh.Find(ob.Info.Ip, ob.Info.Port) < 0)
                    {
                        ob.Removed = true;
                        done.Add($"service {old.Name}: backend {ob.Info.Identity} removed ({ob.Total.ActiveConnections} connection(s) drain)");
                    }
                }
                old.Rebuild();
            }
            foreach (var sc in next.Services)
            {
                if (running.Any(r => !r.Removed && r.Name == sc.Name))
                    continue;
                var fresh = resolved[sc.Name];
                R.Add(fresh);
                _program!.AddService(fresh.Vip.ToIPAddress(), fresh.Protocol.WireNumber(fresh.Vip), fresh.Port);
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
