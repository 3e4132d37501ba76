using System.Net;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Packets;

namespace ZonLb.UnitTests;

/// <summary>`config import` of zon-lb configurations (written here in zon-lb's format) and `config show`'s writer.</summary>
public class ConfigImportTests
{
    private const string ZonLb = """
        [actions.nd]
        fill = true

        [netif.eth1.7]
        ip = "192.0.2.10"
        proto = 6
        port = 443
        options = []

        [backend.7_1]
        ip = "198.51.100.3"
        proto = 6
        options = ["redirect", "src_ip=198.51.100.1"]

        [backend.7_0]
        ip = "198.51.100.2"
        proto = 6
        port = 8443
        options = ["tx", "redirect", "src_ip=198.51.100.1"]

        [netif.eth1.8]
        ip = "192.0.2.10"
        proto = 17
        port = 53
        options = []

        [backend.8_0]
        ip = "198.51.100.2"
        proto = 17
        options = ["disable", "dsr_l2"]

        [netif.eth2.9]
        ip = "192.0.2.10"
        proto = 1

        [backend.9_0]
        ip = "198.51.100.2"
        proto = 1
        options = ["redirect", "no_nat"]

        [netif.eth2.10]
        ip = "2001:db8::10"
        proto = 58

        [backend.10_0]
        ip = "2001:db8::2"
        proto = 58
        """;

    [Fact]
    public void Groups_become_services_and_backends_keep_their_order_ports_and_snat()
    {
        var (cfg, _) = ZonLbImporter.Import(ZonLb, "zonlb.toml");
        Assert.Equal(new[] { "eth1", "eth2" }, cfg.Interfaces.Select(i => i.Name));
        Assert.Equal(new[] { "eth1_7", "eth1_8", "eth2_9", "eth2_10" }, cfg.Services.Select(s => s.Name));
        var https = cfg.Services[0];
        Assert.Equal(IPAddress.Parse("192.0.2.10"), https.Vip);
        Assert.Equal(IpProtocol.Tcp, https.Protocol);
        Assert.Equal(443, https.Port);
        Assert.Equal(new[] { IPAddress.Parse("198.51.100.1") }, https.Snat);
        Assert.Equal(new[] { "198.51.100.2:8443", "198.51.100.3:443" }, https.Backends.Select(b => $"{b.Address}:{b.Port}"));
        Assert.Equal(IpProtocol.Icmp, cfg.Services[2].Protocol);
        Assert.Equal(0, cfg.Services[2].Backends[0].Port);
        Assert.Equal(ForwardingMode.Dsr, cfg.Services[1].Mode); // dsr_l2
        Assert.Equal(ForwardingMode.Nat, cfg.Services[0].Mode);
        Assert.Equal((IPAddress.Parse("2001:db8::10"), IpProtocol.Icmp), (cfg.Services[3].Vip, cfg.Services[3].Protocol)); // ICMPv6 echo
    }

    [Fact]
    public void What_cannot_be_expressed_is_left_out_and_said()
    {
        var (cfg, notes) = ZonLbImporter.Import(ZonLb, "zonlb.toml");
        Assert.Equal(0, cfg.Services[1].Backends[0].Weight); // "disable"
        Assert.Contains(notes, n => n.Contains("no_nat", StringComparison.Ordinal));
        Assert.Contains(notes, n => n.Contains("weight 1 and no health check", StringComparison.Ordinal));
        Assert.Contains(notes, n => n.Contains("[actions]", StringComparison.Ordinal));
    }

    [Fact]
    public void The_imported_configuration_is_written_in_a_form_our_loader_accepts_unchanged()
    {
        var (cfg, _) = ZonLbImporter.Import(ZonLb, "zonlb.toml");
        string toml = ConfigWriter.Write(cfg);
        var back = ConfigLoader.Parse(toml, "imported.toml");
        Assert.Equal(toml, ConfigWriter.Write(back));
        Assert.Equal(4, back.Services.Count);
        Assert.Equal(ForwardingMode.Dsr, back.Services[1].Mode);
    }

    [Fact]
    public void A_file_that_is_not_zon_lb_is_refused()
    {
        var e = Assert.Throws<ConfigException>(() => ZonLbImporter.Import("[[interface]]\nname = \"x\"\n", "ours.toml"));
        Assert.Contains("not a zon-lb configuration", e.Message);
    }

    [Fact]
    public void Config_writer_round_trips_every_setting()
    {
        const string toml = """
            metrics_listen = "127.0.0.1:9464"
            control_socket = "/run/zlb.sock"

            [[interface]]
            name = "lbc"
            xdp_mode = "generic"

            [[service]]
            name = "web"
            vip = "10.10.0.1"
            protocol = "tcp"
            port = 80
            snat = "10.20.0.1"
            health = { kind = "http", interval = 0.5, timeout = 0.25, rise = 1, fall = 2, path = "/healthz", drain = false }

            [[service.backend]]
            address = "10.20.0.2"
            port = 8080
            weight = 3

            [engine]
            connection_capacity = 1000
            tcp_established_timeout = 600
            worker_fifo_priority = 10
            """;
        var a = ConfigLoader.Parse(toml, "a.toml");
        string written = ConfigWriter.Write(a);
        var b = ConfigLoader.Parse(written, "b.toml");
        Assert.Equal(written, ConfigWriter.Write(b));
        Assert.Equal("127.0.0.1:9464", b.MetricsListen);
        Assert.Equal("/run/zlb.sock", b.ControlSocket);
        Assert.Equal(HealthKind.Http, b.Services[0].Health!.Kind);
        Assert.False(b.Services[0].Health!.Drain);
        Assert.Equal(0.5, b.Services[0].Health!.IntervalSeconds);
        Assert.Equal(3, b.Services[0].Backends[0].Weight);
        Assert.Equal(600, b.Engine.TcpEstablishedTimeoutSeconds);
        Assert.Equal(10, b.Engine.WorkerFifoPriority);
    }
}
