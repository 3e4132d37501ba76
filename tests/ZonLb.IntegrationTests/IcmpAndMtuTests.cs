using System.Net;
using System.Net.Sockets;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// ICMP errors through the load balancer and path MTU: the client's stack must see correct errors, and TCP must
/// survive a path whose MTU is smaller than its segments (tx offload left on).
/// </summary>
public class IcmpAndMtuTests
{
    private const string ClosedUdp = """
        [[service]]
        name = "closed"
        vip = "10.10.0.1"
        protocol = "udp"
        port = 5454
        [[service.backend]]
        address = "10.20.0.2"
        """;

    [Fact]
    public async Task A_closed_udp_port_on_the_backend_gives_the_client_connection_refused()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(ClosedUdp)).WaitUntilRunning();
        using var udp = t.Client.Run(() => new UdpClient(AddressFamily.InterNetwork));
        udp.Connect(IPAddress.Parse(Topology.Vip), 5454);
        SocketException? refused = null;
        for (int i = 0; i < 3 && refused == null; i++) // the first datagram may wait for the backend's ARP entry
        {
            await udp.SendAsync(new byte[] { 1, 2, 3 });
            try
            {
                using var cts = new CancellationTokenSource(2000);
                await udp.ReceiveAsync(cts.Token);
            }
            catch (SocketException e)
            {
                refused = e;
            }
            catch (OperationCanceledException)
            {
            }
        }
        Assert.NotNull(refused);
        Assert.Equal(SocketError.ConnectionRefused, refused!.SocketErrorCode);
        lb.Stop();
        Assert.Matches(@"icmp_errors_translated=[1-9]", lb.Output);
    }

    [Fact]
    public void A_df_ping_too_big_for_the_backend_side_gets_fragmentation_needed_from_the_load_balancer()
    {
        using var t = Topology.Create();
        t.Lb.Ip("link", "set", "lbs", "mtu", "1280");
        t.Backend.Ip("link", "set", "eth0", "mtu", "1280");
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "2", Topology.Vip); // the backend's ARP entry
        var r = t.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", Topology.Vip);
        Assert.Contains($"From {Topology.Vip} icmp_seq=1 Frag needed and DF set (mtu = 1280)", r.Stdout);
    }

    [Fact]
    public async Task During_a_ttl_1_flood_from_spoofed_sources_a_clients_df_ping_still_gets_fragmentation_needed()
    {
        using var t = Topology.Create();
        t.Lb.Ip("link", "set", "lbs", "mtu", "1280");
        t.Backend.Ip("link", "set", "eth0", "mtu", "1280");
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "2", Topology.Vip); // the backend's ARP entry

        // 40,000 UDP datagrams with TTL 1 from random sources, about 10,000 a second: far past the time-exceeded budget
        var flood = Task.Run(() => t.Client.Exec(TimeSpan.FromMinutes(2), "hping3", "-q", "--udp", "-p", "5353", "--ttl", "1",
            "--rand-source", "-c", "40000", "-i", "u100", Topology.Vip));
        await Task.Delay(1000);
        var r = t.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "3", "-i", "0.5", "-W", "2", "-M", "do", "-s", "1400", Topology.Vip);
        var f = await flood;
        Assert.True(f.ExitCode is 0 or 1, f.Output);

        Assert.Contains($"From {Topology.Vip} icmp_seq=1 Frag needed and DF set (mtu = 1280)", r.Stdout);
        Assert.Equal(0, lb.Stop());
        string totals = lb.Output.Split('\n').Last(l => l.Contains("totals:"));
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(totals, "icmp_rate_limited=[1-9]"), totals); // the flood met its budget
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(totals, "icmp_too_big_sent=[1-9]"), totals);
    }

    [Fact]
    public async Task Over_ipv6_a_closed_port_is_refused_and_a_packet_too_big_for_the_backend_side_is_answered()
    {
        using var t = Topology.Create();
        t.WaitForIpv6Ready();
        t.Lb.Ip("link", "set", "lbs", "mtu", "1280");
        t.Backend.Ip("link", "set", "eth0", "mtu", "1280");
        string closed6 = ClosedUdp.Replace("\"closed\"", "\"closed6\"").Replace("10.10.0.1", Topology.Vip6).Replace("10.20.0.2", Topology.BackendIp6);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.Ipv6Config(closed6)).WaitUntilRunning();
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-6", "-c", "1", "-W", "2", Topology.Vip6); // the backend's NDP entry

        var r = t.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-6", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", Topology.Vip6);
        Assert.Contains($"From {Topology.Vip6} icmp_seq=1 Packet too big: mtu=1280", r.Stdout);

        using var udp = t.Client.Run(() => new UdpClient(AddressFamily.InterNetworkV6));
        udp.Connect(IPAddress.Parse(Topology.Vip6), 5454);
        await udp.SendAsync(new byte[] { 1, 2, 3 });
        using var cts = new CancellationTokenSource(3000);
        var e = await Assert.ThrowsAsync<SocketException>(async () => await udp.ReceiveAsync(cts.Token));
        Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
    }

    /// <summary>A TCP upload where the backend advertises a larger MSS than the backend side's MTU carries (a
    /// route's advmss): only the load balancer's fragmentation-needed makes the client shrink its segments.</summary>
    [Fact]
    public async Task A_tcp_upload_succeeds_when_the_backend_side_mtu_is_smaller_than_the_segments()
    {
        using var t = Topology.Create();
        t.Lb.Ip("link", "set", "lbs", "mtu", "1280");
        t.Backend.Ip("link", "set", "eth0", "mtu", "1280");
        t.Backend.Ip("route", "replace", "10.20.0.0/24", "dev", "eth0", "advmss", "1460");
        using var sink = new UploadSink(t.Backend, Topology.BackendIp, 8080);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        long received = await Upload(t.Client, Topology.Vip, 80, 1_000_000);
        Assert.Equal(1_000_000, received);
        lb.Stop();
        Assert.Matches(@"icmp_too_big_sent=[1-9]", lb.Output);
    }

    /// <summary>
    /// A router between the load balancer and the backend, whose link to the backend has a smaller MTU: the
    /// router's fragmentation-needed goes to the SNAT address, and the load balancer translates it back to the
    /// client, whose TCP then shrinks its segments (path MTU discovery through the VIP).
    /// <code>
    ///  client [10.10.0.2] -- [lbc 10.10.0.1 | lbs 10.20.0.1] -- [r0 10.20.0.254 | r1 10.30.0.254, mtu 1280] -- [eth0 10.30.0.2, mtu 1280]
    /// </code>
    /// </summary>
    [Fact]
    public async Task Path_mtu_discovery_works_through_the_load_balancer()
    {
        using var t = Topology.Create();
        using var router = NetworkNamespace.Create("r");
        using var backend = NetworkNamespace.Create("b");
        router.Ip("link", "add", "r0", "type", "veth", "peer", "name", "r0lb", "netns", t.Lb.Name);
        router.Ip("link", "add", "r1", "type", "veth", "peer", "name", "eth0", "netns", backend.Name);
        // the router's side toward the load balancer replaces lbs: lbs keeps its address, now on r0lb's link
        t.Lb.Ip("link", "del", "lbs");
        t.Lb.Ip("link", "set", "r0lb", "name", "lbs");
        t.Lb.Ip("addr", "add", "10.20.0.1/24", "dev", "lbs");
        t.Lb.Ip("link", "set", "lbs", "up");
        t.Lb.Ip("route", "add", "10.30.0.0/24", "via", "10.20.0.254");
        router.Ip("addr", "add", "10.20.0.254/24", "dev", "r0");
        router.Ip("addr", "add", "10.30.0.254/24", "dev", "r1");
        router.Ip("link", "set", "r1", "mtu", "1280");
        router.Ip("link", "set", "r0", "up");
        router.Ip("link", "set", "r1", "up");
        router.Exec(TimeSpan.FromSeconds(10), "sysctl", "-w", "net.ipv4.ip_forward=1");
        backend.Ip("addr", "add", "10.30.0.2/24", "dev", "eth0");
        backend.Ip("link", "set", "eth0", "mtu", "1280");
        backend.Ip("link", "set", "eth0", "up");
        backend.Ip("route", "add", "default", "via", "10.30.0.254", "advmss", "1460");
        using var sink = new UploadSink(backend, "10.30.0.2", 8080);
        string config = Topology.DefaultConfig().Replace($"address = \"{Topology.BackendIp}\"", "address = \"10.30.0.2\"");
        using var lb = ZonLbProcess.Start(t.Lb, config).WaitUntilRunning();

        long received = await Upload(t.Client, Topology.Vip, 80, 1_000_000);

        Assert.Equal(1_000_000, received);
        Assert.Contains("mtu 1280", t.Client.Ip("route", "get", Topology.Vip));
        lb.Stop();
        Assert.Matches(@"icmp_errors_translated=[1-9]", lb.Output);
    }

    /// <summary>Sends n bytes over one TCP connection and returns what the sink says it received.</summary>
    private static async Task<long> Upload(NetworkNamespace ns, string address, int port, int n)
    {
        using var cts = new CancellationTokenSource(30000);
        using var s = ns.Run(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        await s.ConnectAsync(IPAddress.Parse(address), port, cts.Token);
        var chunk = new byte[65536];
        for (int left = n; left > 0; left -= chunk.Length)
            await s.SendAsync(chunk.AsMemory(0, Math.Min(left, chunk.Length)), SocketFlags.None, cts.Token);
        s.Shutdown(SocketShutdown.Send);
        var buf = new byte[64];
        int got = 0, m;
        while ((m = await s.ReceiveAsync(buf.AsMemory(got), SocketFlags.None, cts.Token)) > 0)
            got += m;
        return long.Parse(System.Text.Encoding.ASCII.GetString(buf, 0, got).Trim());
    }

    /// <summary>A TCP server that reads a connection to its end and answers with the byte count.</summary>
    private sealed class UploadSink : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();

        public UploadSink(NetworkNamespace ns, string address, int port)
        {
            _listener = ns.Run(() =>
            {
                var l = new TcpListener(IPAddress.Parse(address), port);
                l.Start();
                return l;
            });
            _ = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    Socket c;
                    try
                    {
                        c = await _listener.AcceptSocketAsync(_stop.Token);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                        return;
                    }
                    _ = Task.Run(async () =>
                    {
                        using (c)
                        {
                            var buf = new byte[65536];
                            long total = 0;
                            int k;
                            try
                            {
                                while ((k = await c.ReceiveAsync(buf, SocketFlags.None, _stop.Token)) > 0)
                                    total += k;
                                await c.SendAsync(System.Text.Encoding.ASCII.GetBytes($"{total}\n"), SocketFlags.None, _stop.Token);
                                c.Shutdown(SocketShutdown.Both);
                            }
                            catch (Exception e) when (e is OperationCanceledException or SocketException)
                            {
                            }
                        }
                    });
                }
            });
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
        }
    }
}
