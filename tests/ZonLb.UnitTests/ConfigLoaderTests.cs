using System.Net;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Packets;
using ZonLb.Native.Bpf;

namespace ZonLb.UnitTests;

public class ConfigLoaderTests
{
    private const string Valid = """
        [[interface]]
        name = "lbc"

        [[interface]]
        name = "lbs"
        xdp_mode = "native"

        [[service]]
        name = "web"
        vip = "10.10.0.1"
        protocol = "tcp"
        port = 80
        snat = "10.20.0.1"

        [[service.backend]]
        address = "10.20.0.2"
        port = 8080

        [[service.backend]]
        address = "10.20.0.3"

        [[service]]
        name = "ping"
        vip = "10.10.0.1"
        protocol = "icmp"

        [[service.backend]]
        address = "10.20.0.2"

        [engine]
        connection_capacity = 1000
        nat_port_min = 50000
        nat_port_max = 50100
        """;

    private static string ErrorOf(string toml)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(toml, "test.toml"));
        Assert.StartsWith("test.toml", e.Message);
        return e.Message;
    }

    [Fact]
    public void A_valid_file_maps_onto_the_model()
    {
        var c = ConfigLoader.Parse(Valid, "test.toml");
        Assert.Equal(new[] { "lbc", "lbs" }, c.Interfaces.Select(i => i.Name));
        Assert.Equal(XdpAttachMode.Native, c.Interfaces[1].XdpMode);
        var web = c.Services[0];
        Assert.Equal(IPAddress.Parse("10.10.0.1"), web.Vip);
        Assert.Equal(IpProtocol.Tcp, web.Protocol);
        Assert.Equal(80, web.Port);
        Assert.Equal(new[] { IPAddress.Parse("10.20.0.1") }, web.Snat);
        Assert.Equal(8080, web.Backends[0].Port);
        Assert.Equal(80, web.Backends[1].Port); // defaults to the service port
        Assert.Equal(IpProtocol.Icmp, c.Services[1].Protocol);
        Assert.Equal(0, c.Services[1].Port);
        Assert.Equal(1000, c.Engine.ConnectionCapacity);
        Assert.Equal(50000, c.Engine.NatPortMin);
    }

    [Fact]
    public void An_unknown_key_is_named_with_its_path_and_value()
    {
        var m = ErrorOf(Valid.Replace("port = 8080", "prot = 8080"));
        Assert.Contains("service[0].backend[0].prot = 8080", m);
        Assert.Contains("unknown key", m);
    }

    [Fact]
    public void A_file_without_interfaces_is_refused()
    {
        Assert.Contains("no [[interface]]", ErrorOf("[[service]]\nname = \"a\""));
    }

    [Fact]
    public void A_bad_address_is_named()
    {
        var m = ErrorOf(Valid.Replace("vip = \"10.10.0.1\"\nprotocol = \"tcp\"", "vip = \"10.10.0.300\"\nprotocol = \"tcp\""));
        Assert.Contains("service[0].vip = \"10.10.0.300\"", m);
        Assert.Contains("not an IP address", m);
    }

    [Fact]
    public void A_port_out_of_range_is_named()
    {
        var m = ErrorOf(Valid.Replace("port = 8080", "port = 70000"));
        Assert.Contains("service[0].backend[0].port = 70000", m);
        Assert.Contains("out of range", m);
    }

    [Fact]
    public void A_duplicate_service_name_is_refused()
    {
        var m = ErrorOf(Valid.Replace("name = \"ping\"", "name = \"web\""));
        Assert.Contains("service[1].name = \"web\"", m);
        Assert.Contains("duplicate service name", m);
    }

    [Fact]
    public void Two_services_on_the_same_vip_protocol_and_port_are_refused()
    {
        var m = ErrorOf(Valid.Replace("name = \"ping\"\nvip = \"10.10.0.1\"\nprotocol = \"icmp\"",
            "name = \"web2\"\nvip = \"10.10.0.1\"\nprotocol = \"tcp\"\nport = 80"));
        Assert.Contains("service[1].vip = 10.10.0.1", m);
        Assert.Contains("already serves", m);
    }

    [Fact]
    public void An_icmp_service_with_a_port_is_refused()
    {
        var m = ErrorOf(Valid.Replace("protocol = \"icmp\"", "protocol = \"icmp\"\nport = 7"));
        Assert.Contains("service[1].port = 7", m);
    }

    [Fact]
    public void An_unknown_protocol_is_named()
    {
        var m = ErrorOf(Valid.Replace("protocol = \"tcp\"", "protocol = \"sctp\""));
        Assert.Contains("service[0].protocol = \"sctp\"", m);
        Assert.Contains("tcp | udp | icmp", m);
    }

    [Fact]
    public void A_service_without_backends_is_refused()
    {
        var m = ErrorOf("""
            [[interface]]
            name = "lbc"
            [[service]]
            name = "web"
            vip = "10.10.0.1"
            protocol = "tcp"
            port = 80
            """);
        Assert.Contains("service[0]", m);
        Assert.Contains("at least one backend", m);
    }

    [Fact]
    public void A_service_does_not_mix_address_families()
    {
        var m = ErrorOf(Valid.Replace("address = \"10.20.0.3\"", "address = \"fd00::3\""));
        Assert.Contains("service[0].backend[1].address = \"fd00::3\"", m);
        Assert.Contains("one family", m);
    }

    [Fact]
    public void An_ipv6_service_with_ipv6_backends_loads()
    {
        var cfg = ConfigLoader.Parse(Valid.Replace("vip = \"10.10.0.1\"", "vip = \"fd00:10::1\"").Replace("\"10.20.0.1\"", "\"fd00:20::1\"")
            .Replace("\"10.20.0.2\"", "\"fd00:20::2\"").Replace("\"10.20.0.3\"", "\"fd00:20::3\""), "test.toml");
        Assert.Equal(System.Net.IPAddress.Parse("fd00:10::1"), cfg.Services[0].Vip);
        Assert.Equal(System.Net.IPAddress.Parse("fd00:20::3"), cfg.Services[0].Backends[1].Address);
    }

    [Fact]
    public void Vlan_ids_are_read_per_interface_and_checked()
    {
        var cfg = ConfigLoader.Parse(Valid.Replace("name = \"lbc\"", "name = \"lbc\"\nvlans = [100, 200]"), "test.toml");
        Assert.Equal(new[] { 100, 200 }, cfg.Interfaces[0].Vlans);
        Assert.Empty(cfg.Interfaces[1].Vlans);
        var m = ErrorOf(Valid.Replace("name = \"lbc\"", "name = \"lbc\"\nvlans = [100, 4095]"));
        Assert.Contains("interface[0].vlans", m);
        Assert.Contains("4095", m);
    }

    [Fact]
    public void A_dsr_service_keeps_the_ports_and_has_no_snat()
    {
        string dsr = Valid.Replace("snat = \"10.20.0.1\"", "mode = \"dsr\"").Replace("port = 8080", "port = 80");
        Assert.Equal(ForwardingMode.Dsr, ConfigLoader.Parse(dsr, "test.toml").Services[0].Mode);
        Assert.Contains("service[0].backend[0].port = 8080", ErrorOf(Valid.Replace("snat = \"10.20.0.1\"", "mode = \"dsr\"")));
        Assert.Contains("service[0].snat", ErrorOf(Valid.Replace("snat = \"10.20.0.1\"", "snat = \"10.20.0.1\"\nmode = \"dsr\"").Replace("port = 8080", "port = 80")));
        Assert.Contains("service[0].mode = \"l3\"", ErrorOf(Valid.Replace("snat = \"10.20.0.1\"", "mode = \"l3\"")));
    }

    [Fact]
    public void Snat_takes_one_address_or_a_list_of_them_and_is_written_back_alike()
    {
        var list = ConfigLoader.Parse(Valid.Replace("snat = \"10.20.0.1\"", "snat = [\"10.20.0.1\", \"10.20.0.11\"]"), "test.toml");

        Assert.Equal(new[] { IPAddress.Parse("10.20.0.1"), IPAddress.Parse("10.20.0.11") }, list.Services[0].Snat);
        Assert.Contains("snat = [\"10.20.0.1\", \"10.20.0.11\"]", ConfigWriter.Write(list));
        Assert.Equal(ConfigWriter.Write(list), ConfigWriter.Write(ConfigLoader.Parse(ConfigWriter.Write(list), "back.toml")));
        Assert.Contains("snat = \"10.20.0.1\"\n", ConfigWriter.Write(ConfigLoader.Parse(Valid, "test.toml")));
        Assert.Contains("service[0].snat = \"10.20.0.1\": listed twice", ErrorOf(Valid.Replace("snat = \"10.20.0.1\"", "snat = [\"10.20.0.1\", \"10.20.0.1\"]")));
        Assert.Contains("service[0].snat = \"fd00::1\"", ErrorOf(Valid.Replace("snat = \"10.20.0.1\"", "snat = [\"10.20.0.1\", \"fd00::1\"]")));
        Assert.Contains("service[0].snat = \"[...]\": must be an address or a non-empty list", ErrorOf(Valid.Replace("snat = \"10.20.0.1\"", "snat = []")));
    }

    [Fact]
    public void The_full_table_policy_is_early_drop_unless_refuse_is_asked_and_is_written_back()
    {
        Assert.Equal(TableFullPolicy.EarlyDrop, ConfigLoader.Parse(Valid, "test.toml").Engine.TableFull);
        var refuse = ConfigLoader.Parse(Valid.Replace("[engine]", "[engine]\ntable_full = \"refuse\"\ntcp_unassured_timeout = 60"), "test.toml");

        Assert.Equal(TableFullPolicy.Refuse, refuse.Engine.TableFull);
        Assert.Equal(60, refuse.Engine.TcpUnassuredTimeoutSeconds);
        Assert.Contains("table_full = \"refuse\"", ConfigWriter.Write(refuse));
        Assert.Contains("tcp_unassured_timeout = 60", ConfigWriter.Write(refuse));
        Assert.Contains("engine.table_full = \"drop\": must be one of: early-drop | refuse", ErrorOf(Valid.Replace("[engine]", "[engine]\ntable_full = \"drop\"")));
    }

    [Fact]
    public void Busy_polling_and_worker_nice_are_engine_options_with_ranges()
    {
        var cfg = ConfigLoader.Parse(Valid.Replace("[engine]", "[engine]\nbusy_poll_usecs = 50\nworker_nice = -15"), "test.toml");
        Assert.Equal((50, -15), (cfg.Engine.BusyPollMicroseconds, cfg.Engine.WorkerNice));
        Assert.Contains("engine.worker_nice = -30", ErrorOf(Valid.Replace("[engine]", "[engine]\nworker_nice = -30")));
    }

    [Fact]
    public void Multi_buffer_is_an_engine_switch_off_by_default_with_4_kib_frames_when_on_and_written_back()
    {
        Assert.False(ConfigLoader.Parse(Valid, "test.toml").Engine.MultiBuffer);
        var cfg = ConfigLoader.Parse(Valid.Replace("[engine]", "[engine]\nmulti_buffer = true"), "test.toml");
        Assert.True(cfg.Engine.MultiBuffer);
        Assert.Equal(4096, cfg.Engine.FrameSize); // its default frame size
        Assert.Equal(2048, ConfigLoader.Parse(Valid.Replace("[engine]", "[engine]\nmulti_buffer = true\nframe_size = 2048"), "test.toml").Engine.FrameSize);
        Assert.Contains("multi_buffer = true", ConfigWriter.Write(cfg));
        Assert.Equal(ConfigWriter.Write(cfg), ConfigWriter.Write(ConfigLoader.Parse(ConfigWriter.Write(cfg), "back.toml")));
        Assert.Contains("engine.multi_buffer = \"yes\"", ErrorOf(Valid.Replace("[engine]", "[engine]\nmulti_buffer = \"yes\"")));
    }

    [Fact]
    public void A_fifo_priority_for_the_workers_is_1_to_99_and_excludes_nice_and_busy_polling()
    {
        Assert.Equal(10, ConfigLoader.Parse(Valid.Replace("[engine]", "[engine]\nworker_fifo_priority = 10"), "test.toml").Engine.WorkerFifoPriority);
        Assert.Contains("engine.worker_fifo_priority = 100", ErrorOf(Valid.Replace("[engine]", "[engine]\nworker_fifo_priority = 100")));
        Assert.Contains("excludes worker_nice (-15)", ErrorOf(Valid.Replace("[engine]", "[engine]\nworker_fifo_priority = 10\nworker_nice = -15")));
        Assert.Contains("excludes busy_poll_usecs (50)", ErrorOf(Valid.Replace("[engine]", "[engine]\nworker_fifo_priority = 10\nbusy_poll_usecs = 50")));
    }

    [Fact]
    public void Link_local_addresses_are_refused()
    {
        var m = ErrorOf(Valid.Replace("vip = \"10.10.0.1\"", "vip = \"fe80::1\""));
        Assert.Contains("service[0].vip = \"fe80::1\"", m);
        Assert.Contains("link-local", m);
    }

    [Fact]
    public void A_syntax_error_gives_the_line()
    {
        var m = ErrorOf("[[interface]]\nname = \n");
        Assert.Contains("test.toml:2", m);
    }

    [Fact]
    public void Engine_settings_are_range_checked()
    {
        var m = ErrorOf(Valid.Replace("nat_port_max = 50100", "nat_port_max = 40000"));
        Assert.Contains("engine.nat_port_max = 40000", m);
        Assert.Contains("engine.ring_size = 1000", ErrorOf(Valid.Replace("connection_capacity = 1000", "ring_size = 1000")));
    }

    [Fact]
    public void An_interface_name_longer_than_the_kernel_allows_is_refused()
    {
        Assert.Contains("interface[0].name = \"abcdefghijklmnop\"", ErrorOf(Valid.Replace("name = \"lbc\"", "name = \"abcdefghijklmnop\"")));
    }
}
