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

/// <summary>Reports on a running data path (status, stats, sockets, connections, next hops) and the conntrack flush, none of which stops it:
/// counters are summed from the workers' blocks; connections and next hops are copied by each worker between batches.</summary>
internal sealed partial class Dataplane
{
    public Task<StatusReport> GetStatus() => Task.FromResult(new StatusReport(
        typeof(Dataplane).Assembly.GetName().Version?.ToString() ?? "0",
        (long)_uptime.Elapsed.TotalSeconds,
        _config.Source,
        _ports.Select(p => new InterfaceReport(p.Name, p.IfIndex, p.AttachedMode.ToString().ToLowerInvariant(), p.Sockets.Count,
            p.Sockets.Count > 0 && p.Sockets[0].ZeroCopy, p.Missing ? "deleted" : p.Down ? "down" : "up") { Dispatcher = p.Attachment?.Dispatcher == true }).ToList(),
        Services.Services.Count(s => !s.Removed),
        ActiveConnections,
        _workers.Sum(w => w.Processor.Connections.Capacity),
        TotalFrames,
        FreeFrames,
        GC.GetTotalMemory(false),
        Environment.WorkingSet,
        GC.CollectionCount(2))
    {
        Gen0Collections = GC.CollectionCount(0),
        Gen1Collections = GC.CollectionCount(1),
        GcPauseTotalMs = GC.GetTotalPauseDuration().TotalMilliseconds,
        GcPauseMaxRecentMs = RecentMaxPause(),
    });

    private static double RecentMaxPause()
    {
        double max = 0;
        foreach (var kind in new[] { GCKind.Ephemeral, GCKind.FullBlocking, GCKind.Background })
            foreach (var p in GC.GetGCMemoryInfo(kind).PauseDurations)
                max = Math.Max(max, p.TotalMilliseconds);
        return max;
    }

    public Task<StatsReport> GetStats()
    {
        var c = Counters;
        var services = Services.Services.Select(s =>
        {
            var t = s.Total;
            return new ServiceReport(
                s.Name, s.Vip.ToString(), s.Protocol.ToString().ToLowerInvariant(), s.Port, s.Removed, t.NewConnections, t.ActiveConnections,
                DropTable(r => t.Drops[(int)r]),
                s.Backends.Select((b, i) =>
                {
                    var bt = b.Total;
                    return new BackendReport(
                        b.Info.Ip.ToString(), b.Info.Port, s.Dsr ? "dsr" : b.Info.Snat.ToString(), b.Info.Weight, b.State, _healthReasons.GetValueOrDefault((s.Name, i)),
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
        return Task.FromResult(new StatsReport(c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes, c.ToBackend, c.ToClient, c.NewConnections,
            ActiveConnections, c.ExpiredConnections, c.PartialChecksumsRepaired, c.Held, c.HandedOff, c.TxKicks, c.TxKickErrors,
            DropTable(c.Drops), xdp, workers, sockets, interfaces, services)
        {
            RxMultiBuffer = c.RxMultiBuffer, EarlyDrops = c.EarlyDrops, NatPortsReused = c.NatPortsReused, TimeWaitResets = c.TimeWaitResets,
        });
    }

    /// <summary>The kernel's XDP_STATISTICS of every socket (a getsockopt each; the workers go on).</summary>
    public List<(XskSocket Socket, int Worker, XdpStatistics Stats)> SocketStatistics()
    {
        var list = new List<(XskSocket, int, XdpStatistics)>();
        lock (_socketsLock)
        {
            foreach (var w in _workers)
                foreach (var s in w.Owned)
                    if (!s.IsClosed)
                        list.Add((s, w.Index, s.GetStatistics()));
        }
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

    public async Task<List<ConnectionReport>> ListConnections(string? service, int limit)
    {
        int serviceIndex = service == null ? -1 : ServiceIndex(service);
        var copies = await OnEveryWorker(() => new CopyConnections(serviceIndex, limit));
        long now = Environment.TickCount64;
        var services = Services.Services;
        var list = new List<ConnectionReport>();
        foreach (var c in copies.SelectMany(x => x).Take(limit))
        {
            string proto = c.Protocol.ToString().ToLowerInvariant();
            string state = c.Protocol == IpProtocol.Tcp ? c.TcpState.ToString().ToUpperInvariant() : c.Replied ? "REPLIED" : "UNREPLIED";
            if (!c.Assured)
                state += " UNASSURED";
            list.Add(new ConnectionReport(services[c.ServiceIndex].Name, proto, c.ClientIp.WithPort(c.ClientPort), c.VipIp.WithPort(c.VipPort),
                c.BackendIp.WithPort(c.BackendPort), c.Dsr ? "dsr" : c.SnatIp.WithPort(c.NatPort), state, now - c.LastSeen));
        }
        return list;
    }

    public async Task<int> FlushConnections(string? service)
    {
        int serviceIndex = service == null ? -1 : ServiceIndex(service);
        var counts = await OnEveryWorker(() => new FlushConnections(serviceIndex < 0 ? null : c => c.ServiceIndex == serviceIndex));
        return counts.Sum();
    }

    public async Task<List<NextHopReport>> ListNextHops()
    {
        var entries = await OnEveryWorker(() => new WorkerAction<List<KeyValuePair<IpAddr, NextHop>>>(w => w.Processor.NextHops.Entries.ToList()));
        long now = Environment.TickCount64;
        return entries.SelectMany(e => e).DistinctBy(e => e.Key).Select(e => new NextHopReport(
            e.Key.ToString(), IfName(e.Value.IfIndex), e.Value.IfIndex, e.Value.Gateway.ToString(),
            e.Value.State == NextHopState.Resolved ? e.Value.MacText : null,
            e.Value.State.ToString().ToLowerInvariant(), e.Value.RefreshAt - now)).ToList();
    }
}
