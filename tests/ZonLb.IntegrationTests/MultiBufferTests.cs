using System.Net;
using System.Net.Sockets;
using System.Text;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// engine.multi_buffer: jumbo frames (MTU 9000 on every veth, more than one UMEM frame) go through the load
/// balancer as chains of UMEM frames, whole and with correct checksums (TX offload left on, so the senders'
/// checksums are partial and are completed across the chain), in both directions.
/// </summary>
public class MultiBufferTests
{
    private const string MultiBuffer = """

        [engine]
        multi_buffer = true
        """;

    private static Topology JumboTopology(int queues = 0)
    {
        var t = Topology.Create(queues);
        t.Client.Ip("link", "set", "eth0", "mtu", "9000");
        t.Lb.Ip("link", "set", "lbc", "mtu", "9000");
        t.Lb.Ip("link", "set", "lbs", "mtu", "9000");
        t.Backend.Ip("link", "set", "eth0", "mtu", "9000");
        return t;
    }

    [Fact]
    public async Task An_8000_byte_udp_datagram_waits_for_arp_and_it_and_its_larger_echo_cross_the_load_balancer_whole()
    {
        using var t = JumboTopology();
        using var backends = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(MultiBuffer)).WaitUntilRunning();
        // no ARP entry for the backend yet: the first datagram waits for it as a chain, then goes
        using var udp = t.Client.Run(() => new UdpClient(AddressFamily.InterNetwork));
        udp.Client.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.DontFragment, true);
        udp.Connect(IPAddress.Parse(Topology.Vip), 5353);
        var payload = new byte[8000];
        for (int i = 0; i < payload.Length; i++)
            payload[i] = (byte)('a' + i % 26);
        await udp.SendAsync(payload);
        using var cts = new CancellationTokenSource(3000);
        var reply = await udp.ReceiveAsync(cts.Token);
        string text = Encoding.ASCII.GetString(reply.Buffer);
        Assert.StartsWith("echo:" + Encoding.ASCII.GetString(payload) + " from ", text);
        lb.Stop();
        Assert.Matches(@"partial_checksums_repaired=[1-9]", lb.Output);
        Assert.Matches(@"held=[1-9]", lb.Output); // the datagram's chain waited for ARP
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
        Assert.DoesNotMatch(@"(truncated|malformed|hold_queue_full)=", lb.Output);
    }

    [Fact]
    public void A_tcp_download_of_jumbo_segments_arrives_complete()
    {
        using var t = JumboTopology();
        using var backends = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(MultiBuffer)).WaitUntilRunning();
        var r = t.Client.Exec(TimeSpan.FromSeconds(30), "curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{size_download}",
            $"http://{Topology.Vip}/bytes/4000000");
        Assert.Equal(0, r.ExitCode);
        long expected = 4_000_000 + $"hello from backend {Topology.BackendIp}, you are ".Length;
        Assert.InRange(long.Parse(r.Stdout.Trim()), expected + 10, expected + 30); // + "a.b.c.d:port\n"
        lb.Stop();
        var m = System.Text.RegularExpressions.Regex.Match(lb.Output, @"totals: rx_packets=(\d+) rx_multi_buffer=(\d+)");
        Assert.True(m.Success, lb.Output);
        // jumbo segments, not 1500-byte ones: more than 4 MB in well under 4 MB / 1500 frames, about 450 of them chains
        Assert.True(long.Parse(m.Groups[1].Value) < 4_000_000 / 1500, lb.Output);
        // most of them chains (how many segments come full-size varies with timing): at least half the ideal count
        Assert.InRange(long.Parse(m.Groups[2].Value), 4_000_000 / 9000 / 2, 4_000_000 / 3800);
    }

    [Fact]
    public async Task Two_workers_hand_jumbo_frames_to_each_other_whole()
    {
        using var t = JumboTopology(queues: 2);
        using var backends = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(MultiBuffer + "\nworkers = 2")).WaitUntilRunning();

        var bodies = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Clients.HttpGet(t.Client, Topology.Vip, 80, "/bytes/200000")));
        Assert.All(bodies, b => Assert.Equal(200_000, b.Count(c => c == 'x')));
        string big = new('u', 8000);
        for (int i = 0; i < 10; i++)
            Assert.StartsWith($"echo:{i}{big} from ", await Clients.UdpRequest(t.Client, Topology.Vip, 5353, $"{i}{big}"));

        var stats = System.Text.Json.Nodes.JsonNode.Parse(lb.Control("stats", "--json").Stdout)!;
        Assert.True(stats["handed_off"]!.GetValue<long>() > 0, "some frames arrived at the worker that does not own their connection");
        Assert.Equal(0, lb.Stop());
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
        Assert.DoesNotMatch(@"(truncated|malformed|hold_queue_full|handoff_full)=", lb.Output);
    }

    [Fact]
    public void A_jumbo_ping_too_big_for_the_backend_side_gets_fragmentation_needed_and_its_buffers_back()
    {
        using var t = JumboTopology();
        t.Lb.Ip("link", "set", "lbs", "mtu", "1500");
        t.Backend.Ip("link", "set", "eth0", "mtu", "1500");
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig(MultiBuffer)).WaitUntilRunning();
        t.Client.Exec(TimeSpan.FromSeconds(10), "ping", "-c", "1", "-W", "2", Topology.Vip); // the backend's ARP entry
        var r = t.Client.Exec(TimeSpan.FromSeconds(20), "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "8000", Topology.Vip);
        Assert.Contains($"From {Topology.Vip} icmp_seq=1 Frag needed and DF set (mtu = 1500)", r.Stdout);
        Assert.Equal(0, lb.Stop());
        Assert.Matches(@"icmp_too_big_sent=1\b", lb.Output);
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
    }

    [Fact]
    public async Task Over_ipv6_a_jumbo_download_and_an_8000_byte_udp_echo_cross_whole()
    {
        using var t = JumboTopology();
        t.WaitForIpv6Ready();
        using var backends = new Backends(t.Backend, Topology.BackendIp6, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.Ipv6Config(MultiBuffer)).WaitUntilRunning();
        string big = new('v', 8000);
        Assert.StartsWith($"echo:{big} from ", await Clients.UdpRequest(t.Client, Topology.Vip6, 5353, big));
        long got = await Clients.Download(t.Client, Topology.Vip6, 80, 2_000_000, 20000);
        Assert.True(got >= 2_000_000, $"{got} bytes");
        Assert.Equal(0, lb.Stop());
        Assert.Matches(@"rx_multi_buffer=[1-9]\d\d", lb.Output);
        Assert.Matches(@"frames_unaccounted=0\b", lb.Output);
        Assert.DoesNotMatch(@"(truncated|malformed|hold_queue_full)=", lb.Output);
    }
}
