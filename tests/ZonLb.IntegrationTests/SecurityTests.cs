using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using ZonLb.Testing;

namespace ZonLb.IntegrationTests;

/// <summary>
/// Spoofing, isolation and a hostile control socket:
/// client ns -- [lbc | zonlb-afxdp | lbs] -- backend ns (servers on 10.20.0.2, a spoofer on 10.20.0.3).
/// </summary>
[Collection("dataplane")]
public class SecurityTests
{
    private static long Drops(ZonLbProcess lb, string reason) =>
        JsonNode.Parse(lb.Control("stats", "--json").Stdout)!["drops"]![reason]?.GetValue<long>() ?? 0;

    [Fact]
    public async Task Replies_to_a_nat_port_from_the_wrong_address_or_port_are_dropped_not_translated()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();

        using var client = t.Client.Run(() => new UdpClient(new IPEndPoint(IPAddress.Parse(Topology.ClientIp), 0)));
        await client.SendAsync(Encoding.ASCII.GetBytes("real"), new IPEndPoint(IPAddress.Parse(Topology.Vip), 5353));
        var real = await client.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.StartsWith("echo:real", Encoding.ASCII.GetString(real.Buffer));
        int natPort = servers.UdpPeers.Single().Port;

        var target = new IPEndPoint(IPAddress.Parse(Topology.LbBackendSideIp), natPort);
        using (var wrongPort = t.Backend.Run(() => new UdpClient(new IPEndPoint(IPAddress.Parse(Topology.BackendIp), 9999))))
            await wrongPort.SendAsync(Encoding.ASCII.GetBytes("spoof-port"), target);
        using (var wrongAddress = t.Backend.Run(() => new UdpClient(new IPEndPoint(IPAddress.Parse(Topology.BackendIp2), 5353))))
            await wrongAddress.SendAsync(Encoding.ASCII.GetBytes("spoof-address"), target);

        var leak = client.ReceiveAsync();
        await Assert.ThrowsAnyAsync<TimeoutException>(() => leak.WaitAsync(TimeSpan.FromSeconds(1.5)));
        Assert.Equal(2, Drops(lb, "no_connection"));
    }

    [Fact]
    public async Task Ssh_to_the_host_and_non_service_ports_go_to_the_kernel_untouched()
    {
        using var t = Topology.Create();
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        foreach (var (from, address) in new[] { (t.Client, Topology.Vip), (t.Backend, Topology.LbBackendSideIp) })
        {
            using var ssh = t.Lb.Run(() =>
            {
                var l = new TcpListener(IPAddress.Parse(address), 22);
                l.Start();
                return l;
            });
            var accepted = ssh.AcceptTcpClientAsync();
            using var c = from.Run(() => new TcpClient(AddressFamily.InterNetwork));
            await c.ConnectAsync(address, 22).WaitAsync(TimeSpan.FromSeconds(10));
            using var served = await accepted.WaitAsync(TimeSpan.FromSeconds(10));
        }
        // a UDP datagram to a port of the VIP that is no service: the kernel answers "port unreachable"
        using var u = t.Client.Run(() => new UdpClient(AddressFamily.InterNetwork));
        u.Connect(IPAddress.Parse(Topology.Vip), 9999);
        await u.SendAsync(new byte[] { 1 });
        await Assert.ThrowsAnyAsync<SocketException>(() => u.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(5)));

        var stats = JsonNode.Parse(lb.Control("stats", "--json").Stdout)!;
        Assert.Equal(0, stats["rx_packets"]!.GetValue<long>()); // none of it reached the engine
        Assert.True(stats["xdp_program"]!["passed"]!.GetValue<ulong>() > 0);
    }

    [Fact]
    public async Task The_control_socket_refuses_non_root_peers_even_when_its_mode_is_opened()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        File.SetUnixFileMode(lb.SocketPath, (UnixFileMode)0x1B6); // 0666: only the credential check remains
        var r = Command.Run("setpriv", new[] { "--reuid", "65534", "--regid", "65534", "--clear-groups", "socat", "-t2", "-", $"UNIX-CONNECT:{lb.SocketPath}" },
            TimeSpan.FromSeconds(20), stdin: "{\"command\":\"conntrack.flush\"}\n");
        Assert.Contains("root only (peer uid 65534)", r.Stdout);
        Assert.True(lb.WaitForLine("control: refused a connection from uid 65534", TimeSpan.FromSeconds(5)), lb.Output);
        Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
    }

    [Fact]
    public async Task Junk_on_the_control_socket_gets_errors_and_the_data_path_keeps_forwarding()
    {
        using var t = Topology.Create();
        using var servers = new Backends(t.Backend, Topology.BackendIp, 8080, 5353);
        using var lb = ZonLbProcess.Start(t.Lb, Topology.DefaultConfig()).WaitUntilRunning();
        var junk = new[]
        {
            "not json", "[]", "{}", "{\"command\": 5}", "{\"command\":\"nosuch\"}", "{\"command\":\"backend\",\"args\":{}}",
            "{\"command\":\"backend\",\"args\":{\"action\":\"add\",\"service\":\"web\",\"address\":\"not-an-ip\"}}",
            "{\"command\":\"conntrack.list\",\"args\":{\"limit\":\"many\"}}", "{\"command\":\"backend\",\"args\":{\"action\":\"explode\",\"service\":\"web\",\"address\":\"10.20.0.2\"}}",
            "{\"command\":\"" + new string('x', 100_000) + "\"}", "\u0000\u0001\u0002",
        };
        foreach (var line in junk)
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(lb.SocketPath));
            await s.SendAsync(Encoding.UTF8.GetBytes(line + "\n"));
            var buf = new byte[4096];
            var text = new StringBuilder();
            while (!text.ToString().EndsWith('\n'))
            {
                int n = await s.ReceiveAsync(buf, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10));
                if (n == 0)
                    break;
                text.Append(Encoding.UTF8.GetString(buf, 0, n));
            }
            Assert.True(text.Length < 2000, "error answers stay short");
            var answer = JsonNode.Parse(text.ToString())!;
            Assert.False(answer["ok"]!.GetValue<bool>(), line.Length > 80 ? line[..80] : line);
        }
        Assert.Null(lb.WaitForExit(TimeSpan.FromMilliseconds(100)));
        Assert.StartsWith("hello from backend", await Clients.HttpGet(t.Client, Topology.Vip, 80));
        Assert.Equal(0, lb.Control("status").ExitCode);
    }
}
