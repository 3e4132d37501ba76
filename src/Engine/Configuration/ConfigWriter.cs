using System.Globalization;
using System.Text;
using ZonLb.Native.Bpf;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Configuration;

/// <summary>Writes a configuration in the TOML format <see cref="ConfigLoader"/> reads (config show, config import).</summary>
public static class ConfigWriter
{
    /// <summary>The configuration as TOML that <see cref="ConfigLoader.Parse"/> reads back to the same model.</summary>
    public static string Write(LoadBalancerConfig c)
    {
        var sb = new StringBuilder();
        foreach (var i in c.Interfaces)
        {
            sb.Append("[[interface]]\n");
            sb.Append($"name = \"{i.Name}\"\n");
            if (i.XdpMode != XdpAttachMode.Auto)
                sb.Append($"xdp_mode = \"{i.XdpMode.ToString().ToLowerInvariant()}\"\n");
            if (i.XskMode != XskBindMode.Auto)
                sb.Append($"xsk_mode = \"{i.XskMode.ToString().ToLowerInvariant()}\"\n");
            if (i.Vlans.Count > 0)
                sb.Append($"vlans = [{string.Join(", ", i.Vlans)}]\n");
            sb.Append('\n');
        }
        if (c.ControlSocket != LoadBalancerConfig.DefaultControlSocket)
            sb.Insert(0, $"control_socket = \"{c.ControlSocket}\"\n\n");
        if (c.MetricsListen != null)
            sb.Insert(0, $"metrics_listen = \"{c.MetricsListen}\"\n");
        foreach (var s in c.Services)
        {
            sb.Append("[[service]]\n");
            sb.Append($"name = \"{s.Name}\"\n");
            sb.Append($"vip = \"{s.Vip}\"\n");
            sb.Append($"protocol = \"{s.Protocol.ToString().ToLowerInvariant()}\"\n");
            if (s.Port != 0)
                sb.Append($"port = {s.Port}\n");
            if (s.Snat != null)
                sb.Append($"snat = \"{s.Snat}\"\n");
            if (s.Mode == ForwardingMode.Dsr)
                sb.Append("mode = \"dsr\"\n");
            if (s.Health is { } h)
                sb.Append(string.Create(CultureInfo.InvariantCulture,
                    $"health = {{ kind = \"{h.Kind.ToString().ToLowerInvariant()}\", interval = {h.IntervalSeconds}, timeout = {h.TimeoutSeconds}, rise = {h.Rise}, fall = {h.Fall}, path = \"{h.Path}\", drain = {(h.Drain ? "true" : "false")} }}\n"));
            foreach (var b in s.Backends)
            {
                sb.Append("\n[[service.backend]]\n");
                sb.Append($"address = \"{b.Address}\"\n");
                if (b.Port != 0 && b.Port != s.Port)
                    sb.Append($"port = {b.Port}\n");
                if (b.Weight != 1)
                    sb.Append($"weight = {b.Weight}\n");
            }
            sb.Append('\n');
        }
        var defaults = new EngineOptions();
        var engine = new StringBuilder();
        foreach (var (key, get) in EngineKeys)
        {
            object now = get(c.Engine), def = get(defaults);
            if (!Equals(now, def))
                engine.Append(CultureInfo.InvariantCulture, $"{key} = {now}\n");
        }
        if (!c.Engine.RepairPartialChecksums)
            engine.Append("repair_partial_checksums = false\n");
        if (c.Engine.MultiBuffer)
            engine.Append("multi_buffer = true\n");
        if (c.Engine.BusyPollMicroseconds != 0)
            engine.Append($"busy_poll_usecs = {c.Engine.BusyPollMicroseconds}\n");
        if (c.Engine.WorkerNice != 0)
            engine.Append($"worker_nice = {c.Engine.WorkerNice}\n");
        if (c.Engine.WorkerFifoPriority != 0)
            engine.Append($"worker_fifo_priority = {c.Engine.WorkerFifoPriority}\n");
        if (c.Engine.CpuAffinity.Count > 0)
            engine.Append(CultureInfo.InvariantCulture, $"cpu_affinity = [{string.Join(", ", c.Engine.CpuAffinity)}]\n");
        if (engine.Length > 0)
            sb.Append("[engine]\n").Append(engine);
        return sb.ToString().TrimEnd() + "\n";
    }

    /// <summary>The [engine] keys and how to read them, in file order.</summary>
    internal static readonly (string Key, Func<EngineOptions, object> Get)[] EngineKeys =
    {
        ("workers", o => o.Workers), ("frame_count", o => o.FrameCount), ("frame_size", o => o.FrameSize), ("ring_size", o => o.RingSize),
        ("connection_capacity", o => o.ConnectionCapacity), ("maglev_table_size", o => o.MaglevTableSize),
        ("nat_port_min", o => (int)o.NatPortMin), ("nat_port_max", o => (int)o.NatPortMax),
        ("tcp_syn_sent_timeout", o => o.TcpSynSentTimeoutSeconds), ("tcp_syn_recv_timeout", o => o.TcpSynRecvTimeoutSeconds),
        ("tcp_established_timeout", o => o.TcpEstablishedTimeoutSeconds), ("tcp_fin_wait_timeout", o => o.TcpFinWaitTimeoutSeconds),
        ("tcp_close_wait_timeout", o => o.TcpCloseWaitTimeoutSeconds), ("tcp_last_ack_timeout", o => o.TcpLastAckTimeoutSeconds),
        ("tcp_time_wait_timeout", o => o.TcpTimeWaitTimeoutSeconds), ("tcp_close_timeout", o => o.TcpCloseTimeoutSeconds),
        ("udp_timeout", o => o.UdpTimeoutSeconds), ("udp_stream_timeout", o => o.UdpStreamTimeoutSeconds),
        ("icmp_timeout", o => o.IcmpTimeoutSeconds), ("neighbor_wait_ms", o => o.NeighborWaitMilliseconds),
        ("neighbor_cache_seconds", o => o.NeighborCacheSeconds),
    };
}
