using PacketDotNet;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>
/// What a new flow does when the NAT ports toward its backend, or the connection table, are full: conntrack's
/// early drop of unassured entries and its TIME_WAIT port reuse (table_full = "early-drop", the default), NAT
/// ports at random places in the range, and several SNAT addresses per backend.
/// Topology: client 10.10.0.2 -- [lbc | VIP 10.10.0.1, SNAT 10.20.0.1 (and 10.20.0.11) | lbs] -- backend 10.20.0.2:8080
/// </summary>
public class EarlyDropTests
{
    private readonly FixedRoutes _routes = new FixedRoutes()
        .Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
        .Neighbor("10.10.0.2", ClientMac).Neighbor("10.20.0.2", BackendMac);

    private PacketProcessor Processor(EngineOptions options, params string[] snat)
    {
        var addresses = new SnatAddresses((snat.Length == 0 ? new[] { "10.20.0.1" } : snat).Select(IpAddr.Parse).ToArray());
        var services = new[]
        {
            new ResolvedService("web", IpAddr.Parse("10.10.0.1"), IpProtocol.Tcp, 80,
                new[] { ResolvedBackend.WithSnat(IpAddr.Parse("10.20.0.2"), 8080, addresses) }),
        };
        return StandalonePipeline.Create(services, new[] { (2, LbcMac), (3, LbsMac) }, _routes, options, new EngineCounters());
    }

    private static EngineOptions Ports(int count, TableFullPolicy policy = TableFullPolicy.EarlyDrop) =>
        new() { NatPortMin = 61000, NatPortMax = (ushort)(61000 + count - 1), TableFull = policy };

    /// <summary>Sends a client's segment; returns the verdict and the translated frame.</summary>
    private static (Verdict Verdict, byte[] Frame, Forwarding Sent) Client(PacketProcessor p, ushort clientPort, byte flags, long now, uint seq = 1000)
    {
        var frame = Tcp("10.10.0.2", clientPort, "10.10.0.1", 80).TcpFlags(flags).Seq(seq).Build();
        return (p.Process(frame, now, out var sent), frame, sent);
    }

    private static Verdict Backend(PacketProcessor p, ushort natPort, byte flags, long now, string snat = "10.20.0.1") =>
        p.Process(Tcp("10.20.0.2", 8080, snat, natPort).TcpFlags(flags).Build(), now, out _);

    private static ushort SourcePort(byte[] translated) => ParseIPv4(translated).Extract<TcpPacket>().SourcePort;

    private static bool Tracked(PacketProcessor p, ushort clientPort) =>
        p.Connections.TryGetByClient(new FlowKey(IpAddr.Parse("10.10.0.2"), IpAddr.Parse("10.10.0.1"), clientPort, 80, IpProtocol.Tcp), out _);

    /// <summary>SYN, SYN-ACK, ACK and one more ACK: established both ways (assured). Returns the NAT port.</summary>
    private static ushort Establish(PacketProcessor p, ushort clientPort, long now)
    {
        var (_, syn, _) = Client(p, clientPort, 0x02, now);
        ushort nat = SourcePort(syn);
        Backend(p, nat, 0x12, now + 1);
        Client(p, clientPort, 0x10, now + 2);
        Client(p, clientPort, 0x18, now + 3);
        return nat;
    }

    [Fact]
    public void With_every_nat_port_held_a_new_flow_evicts_the_least_recently_seen_unassured_entry()
    {
        var p = Processor(Ports(2));
        Client(p, 1, 0x02, now: 1000);           // SYNs nobody answered: not assured
        Client(p, 2, 0x02, now: 2000);

        var (verdict, _, _) = Client(p, 3, 0x02, now: 3000);

        Assert.Equal(Verdict.Transmit, verdict);
        Assert.Equal(1, p.Counters.EarlyDrops);
        Assert.False(Tracked(p, 1));               // the older one went
        Assert.True(Tracked(p, 2));
        Assert.True(Tracked(p, 3));
        Assert.Equal(0, p.Counters.Drops(DropReason.NatPortsExhausted));
    }

    [Fact]
    public void Assured_connections_are_never_evicted_so_a_range_full_of_them_refuses_new_flows()
    {
        var p = Processor(Ports(2));
        Establish(p, 1, 1000);
        Establish(p, 2, 2000);

        var (verdict, _, _) = Client(p, 3, 0x02, now: 3000);

        Assert.Equal(Verdict.Drop, verdict);
        Assert.Equal(1, p.Counters.Drops(DropReason.NatPortsExhausted));
        Assert.Equal(0, p.Counters.EarlyDrops);
        Assert.True(Tracked(p, 1) && Tracked(p, 2));
    }

    [Fact]
    public void A_spoofed_ack_flood_cannot_keep_a_real_client_out()
    {
        var p = Processor(Ports(8));
        for (ushort i = 0; i < 64; i++)          // eight times the port range of picked-up "connections"
            Client(p, (ushort)(10000 + i), 0x10, now: 1000 + i);

        var (verdict, syn, _) = Client(p, 1, 0x02, now: 2000);
        Assert.Equal(Verdict.Transmit, verdict);
        Assert.Equal(Verdict.Transmit, Backend(p, SourcePort(syn), 0x12, 2001));

        Assert.Equal(64 - 8 + 1, p.Counters.EarlyDrops);
        Assert.Equal(8, p.Connections.Count);
    }

    [Fact]
    public void A_new_syn_takes_over_the_port_of_a_connection_in_time_wait_that_the_client_closed()
    {
        var p = Processor(Ports(1));
        ushort nat = Establish(p, 1, 1000);
        Client(p, 1, 0x11, 1010);                // client FIN
        Backend(p, nat, 0x11, 1011);             // backend FIN
        Client(p, 1, 0x10, 1012);                // last ACK: TIME_WAIT, on the client's side

        var (verdict, syn, _) = Client(p, 2, 0x02, now: 2000);

        Assert.Equal(Verdict.Transmit, verdict);
        Assert.Equal(nat, SourcePort(syn));
        Assert.Equal(1, p.Counters.NatPortsReused);
        Assert.False(Tracked(p, 1));
        Assert.Equal(0, p.Counters.EarlyDrops);
    }

    [Fact]
    public void A_port_whose_backend_waits_in_time_wait_goes_to_a_new_syn_with_a_reset_at_the_sequence_number_it_expects()
    {
        var p = Processor(Ports(1));
        ushort nat = Establish(p, 1, 1000);
        Backend(p, nat, 0x11, 1010);                          // the backend closes first: it will wait in TIME_WAIT
        Client(p, 1, 0x10, 1011, seq: 5000);
        Client(p, 1, 0x11, 1012, seq: 5000);                  // the client's FIN at 5000: the backend expects 5001 next
        Backend(p, nat, 0x10, 1013);

        var syn = Client(p, 2, 0x02, now: 2000, seq: 4000);   // an older sequence number, and unrelated timestamps

        Assert.Equal(Verdict.Transmit, syn.Verdict);
        Assert.Equal(nat, SourcePort(syn.Frame));
        Assert.Equal(5001u, syn.Sent.TimeWaitResetSeq);       // the worker sends that reset to the backend first
        Assert.Equal(1, p.Counters.NatPortsReused);
        var ack = Client(p, 2, 0x10, now: 2001);
        Assert.Null(ack.Sent.TimeWaitResetSeq);               // once, for the SYN that took the port
    }

    [Fact]
    public void A_port_of_a_connection_the_client_closed_first_is_reused_without_a_reset()
    {
        var p = Processor(Ports(1));
        ushort nat = Establish(p, 1, 1000);
        Client(p, 1, 0x11, 1010);
        Backend(p, nat, 0x11, 1011);
        Client(p, 1, 0x10, 1012);

        var syn = Client(p, 2, 0x02, now: 2000);

        Assert.Equal(Verdict.Transmit, syn.Verdict);
        Assert.Null(syn.Sent.TimeWaitResetSeq);
    }

    [Fact]
    public void When_full_tables_refuse_no_entry_is_evicted()
    {
        var p = Processor(Ports(2, TableFullPolicy.Refuse));
        Client(p, 1, 0x02, now: 1000);
        Client(p, 2, 0x02, now: 2000);

        var (verdict, _, _) = Client(p, 3, 0x02, now: 3000);

        Assert.Equal(Verdict.Drop, verdict);
        Assert.Equal(1, p.Counters.Drops(DropReason.NatPortsExhausted));
        Assert.Equal(0, p.Counters.EarlyDrops);
    }

    [Fact]
    public void A_full_connection_table_evicts_an_unassured_entry_for_a_new_flow()
    {
        var p = Processor(new EngineOptions { ConnectionCapacity = 2 });
        Client(p, 1, 0x02, now: 1000);
        Client(p, 2, 0x02, now: 2000);

        var (verdict, _, _) = Client(p, 3, 0x02, now: 3000);

        Assert.Equal(Verdict.Transmit, verdict);
        Assert.Equal(1, p.Counters.EarlyDrops);
        Assert.Equal(0, p.Counters.Drops(DropReason.ConnectionTableFull));
        Assert.False(Tracked(p, 1));
    }

    [Fact]
    public void A_full_connection_table_of_assured_connections_refuses_new_flows()
    {
        var p = Processor(new EngineOptions { ConnectionCapacity = 2 });
        Establish(p, 1, 1000);
        Establish(p, 2, 2000);

        var (verdict, _, _) = Client(p, 3, 0x02, now: 3000);

        Assert.Equal(Verdict.Drop, verdict);
        Assert.Equal(1, p.Counters.Drops(DropReason.ConnectionTableFull));
    }

    [Fact]
    public void Nat_ports_come_from_random_places_in_the_range()
    {
        var first = Processor(new EngineOptions());
        var second = Processor(new EngineOptions());
        var a = Enumerable.Range(1, 200).Select(i => SourcePort(Client(first, (ushort)i, 0x02, 1000).Frame)).ToList();
        var b = Enumerable.Range(1, 200).Select(i => SourcePort(Client(second, (ushort)i, 0x02, 1000).Frame)).ToList();

        int sequential = a.Zip(a.Skip(1), (x, y) => y == x + 1 ? 1 : 0).Sum();
        Assert.True(sequential < 10, $"{sequential} of 199 ports followed their predecessor");
        Assert.NotEqual(a, b);                                 // another process, other ports
        Assert.All(a, port => Assert.InRange(port, 61000, 65535));
        Assert.Equal(200, a.Distinct().Count());
    }

    [Fact]
    public void Two_snat_addresses_hold_twice_the_connections_toward_a_backend()
    {
        var p = Processor(Ports(1, TableFullPolicy.Refuse), "10.20.0.1", "10.20.0.11");
        var one = Client(p, 1, 0x02, 1000);
        var two = Client(p, 2, 0x02, 1001);
        var three = Client(p, 3, 0x02, 1002);

        Assert.Equal(Verdict.Transmit, one.Verdict);
        Assert.Equal(Verdict.Transmit, two.Verdict);
        Assert.Equal(Verdict.Drop, three.Verdict);
        var sources = new[] { one.Frame, two.Frame }.Select(f => ParseIPv4(f).SourceAddress.ToString()).Order();
        Assert.Equal(new[] { "10.20.0.1", "10.20.0.11" }, sources);
        // the reply to the second address comes back to the client
        string second = ParseIPv4(two.Frame).SourceAddress.ToString();
        Assert.Equal(Verdict.Transmit, Backend(p, SourcePort(two.Frame), 0x12, 1003, second));
    }
}
