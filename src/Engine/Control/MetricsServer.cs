using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ZonLb.Engine.Runtime;

namespace ZonLb.Engine.Control;

/// <summary>
/// The Prometheus text endpoint (`metrics_listen`): GET /metrics answers the same counters as `stats`, named
/// zonlb_*; counters end in _total, gauges do not; labels: reason, service, backend, direction, action.
/// </summary>
public sealed class MetricsServer : IDisposable
{
    private readonly Dataplane _dp;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();

    /// <summary>Serves the Prometheus text format of <paramref name="loadBalancer"/>'s counters on
    /// "address:port" <paramref name="listen"/>, path /metrics.</summary>
    public MetricsServer(LoadBalancer loadBalancer, string listen)
    {
        _dp = loadBalancer.Dataplane;
        _listener = new TcpListener(IPEndPoint.Parse(listen));
        _listener.Start();
        _ = Task.Run(AcceptLoop);
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var buf = new byte[4096];
                var request = new StringBuilder();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    int n = await stream.ReadAsync(buf, timeout.Token);
                    if (n == 0)
                        return;
                    request.Append(Encoding.ASCII.GetString(buf, 0, n));
                }
                string first = request.ToString().Split('\n')[0];
                string status, body;
                if (first.StartsWith("GET /metrics ", StringComparison.Ordinal))
                {
                    status = "200 OK";
                    body = Render(await _dp.GetStats(), await _dp.GetStatus());
                }
                else
                {
                    status = "404 Not Found";
                    body = "only GET /metrics is served here\n";
                }
                var bytes = Encoding.UTF8.GetBytes(body);
                var head = Encoding.ASCII.GetBytes(
                    $"HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n");
                await stream.WriteAsync(head, timeout.Token);
                await stream.WriteAsync(bytes, timeout.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
            {
            }
        }
    }

    /// <summary>The Prometheus text exposition of a stats and status snapshot.</summary>
    public static string Render(StatsReport s, StatusReport st)
    {
        var w = new Writer();
        w.Metric("zonlb_rx_packets_total", "counter", "Frames received from the AF_XDP sockets.", s.RxPackets);
        w.Metric("zonlb_rx_bytes_total", "counter", "Bytes received from the AF_XDP sockets.", s.RxBytes);
        w.Metric("zonlb_rx_multi_buffer_total", "counter", "Frames received as chains of UMEM frames (multi_buffer).", s.RxMultiBuffer);
        w.Metric("zonlb_tx_packets_total", "counter", "Frames queued for transmission.", s.TxPackets);
        w.Metric("zonlb_tx_bytes_total", "counter", "Bytes queued for transmission.", s.TxBytes);
        w.Metric("zonlb_new_connections_total", "counter", "Connections created.", s.NewConnections);
        w.Metric("zonlb_expired_connections_total", "counter", "Connections removed after their idle timeout.", s.ExpiredConnections);
        w.Metric("zonlb_early_drops_total", "counter", "Unassured entries evicted to make room for new flows.", s.EarlyDrops);
        w.Metric("zonlb_nat_ports_reused_total", "counter", "NAT ports taken over from closed TCP connections.", s.NatPortsReused);
        w.Metric("zonlb_time_wait_resets_total", "counter", "Resets sent to end a backend's TIME_WAIT on a NAT port taken over.", s.TimeWaitResets);
        w.Metric("zonlb_active_connections", "gauge", "Connections in the table.", s.ActiveConnections);
        w.Metric("zonlb_connection_capacity", "gauge", "Size of the connection table.", st.ConnectionCapacity);
        w.Metric("zonlb_partial_checksums_repaired_total", "counter", "TCP/UDP checksums completed from CHECKSUM_PARTIAL.", s.PartialChecksumsRepaired);
        w.Metric("zonlb_held_for_neighbor_total", "counter", "Frames that waited for ARP resolution.", s.HeldForNeighbor);
        w.Metric("zonlb_frames_free", "gauge", "UMEM frames in the pool.", st.FramesFree);
        w.Metric("zonlb_frames", "gauge", "UMEM frames in all.", st.FramesTotal);
        w.Header("zonlb_drops_total", "counter", "Frames dropped, by reason.");
        foreach (var (reason, n) in s.Drops)
            w.Sample("zonlb_drops_total", n, ("reason", reason));
        w.Header("zonlb_xdp_frames_total", "counter", "Frames seen by the XDP program, by action.");
        foreach (var (action, n) in s.XdpProgram)
            w.Sample("zonlb_xdp_frames_total", (long)n, ("action", action));

        foreach (var (name, read) in new (string, Func<SocketReport, ulong>)[]
                 {
                     ("rx_dropped", k => k.RxDropped), ("rx_ring_full", k => k.RxRingFull), ("rx_fill_ring_empty_descs", k => k.RxFillRingEmptyDescs),
                     ("rx_invalid_descs", k => k.RxInvalidDescs), ("tx_invalid_descs", k => k.TxInvalidDescs), ("tx_ring_empty_descs", k => k.TxRingEmptyDescs),
                 })
        {
            w.Header($"zonlb_xsk_{name}_total", "counter", $"The kernel's XDP_STATISTICS {name}, per AF_XDP socket.");
            foreach (var k in s.Sockets)
                w.Sample($"zonlb_xsk_{name}_total", (long)read(k), ("interface", k.Interface), ("queue", k.Queue.ToString(CultureInfo.InvariantCulture)));
        }
        w.Header("zonlb_service_new_connections_total", "counter", "Connections created, per service.");
        foreach (var v in s.Services)
            w.Sample("zonlb_service_new_connections_total", v.NewConnections, ("service", v.Name));
        w.Header("zonlb_service_active_connections", "gauge", "Connections in the table, per service.");
        foreach (var v in s.Services)
            w.Sample("zonlb_service_active_connections", v.ActiveConnections, ("service", v.Name));
        w.Header("zonlb_service_drops_total", "counter", "Frames of a service dropped, by reason.");
        foreach (var v in s.Services)
            foreach (var (reason, n) in v.Drops)
                w.Sample("zonlb_service_drops_total", n, ("service", v.Name), ("reason", reason));

        w.Header("zonlb_backend_packets_total", "counter", "Frames forwarded, per backend and direction.");
        foreach (var v in s.Services)
            foreach (var b in v.Backends)
            {
                w.Sample("zonlb_backend_packets_total", b.PacketsToBackend, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"), ("direction", "to_backend"));
                w.Sample("zonlb_backend_packets_total", b.PacketsToClient, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"), ("direction", "to_client"));
            }
        w.Header("zonlb_backend_bytes_total", "counter", "Bytes forwarded, per backend and direction.");
        foreach (var v in s.Services)
            foreach (var b in v.Backends)
            {
                w.Sample("zonlb_backend_bytes_total", b.BytesToBackend, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"), ("direction", "to_backend"));
                w.Sample("zonlb_backend_bytes_total", b.BytesToClient, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"), ("direction", "to_client"));
            }
        w.Header("zonlb_backend_new_connections_total", "counter", "Connections created, per backend.");
        foreach (var v in s.Services)
            foreach (var b in v.Backends)
                w.Sample("zonlb_backend_new_connections_total", b.NewConnections, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"));
        w.Header("zonlb_backend_active_connections", "gauge", "Connections in the table, per backend.");
        foreach (var v in s.Services)
            foreach (var b in v.Backends)
                w.Sample("zonlb_backend_active_connections", b.ActiveConnections, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"));
        w.Header("zonlb_backend_up", "gauge", "1 when the backend takes new flows.");
        foreach (var v in s.Services)
            foreach (var b in v.Backends)
                w.Sample("zonlb_backend_up", b.State == "up" ? 1 : 0, ("service", v.Name), ("backend", $"{b.Address}:{b.Port}"));
        return w.ToString();
    }

    private sealed class Writer
    {
        private readonly StringBuilder _sb = new();

        public void Header(string name, string type, string help) =>
            _sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");

        public void Metric(string name, string type, string help, long value)
        {
            Header(name, type, help);
            Sample(name, value);
        }

        public void Sample(string name, long value, params (string Key, string Value)[] labels)
        {
            _sb.Append(name);
            if (labels.Length > 0)
                _sb.Append('{').AppendJoin(',', labels.Select(l => $"{l.Key}=\"{Escape(l.Value)}\"")).Append('}');
            _sb.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        private static string Escape(string v) => v.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

        public override string ToString() => _sb.ToString();
    }

    /// <summary>Stops listening.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
