using System.Buffers.Binary;
using System.Net;
using PacketDotNet;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>
/// The NAT pipeline on golden frames, checked with PacketDotNet as the oracle.
/// Topology: client 10.10.0.2 -- [ifindex 2 "lbc", VIP 10.10.0.1 | ifindex 3 "lbs", SNAT 10.20.0.1] -- backends 10.20.0.2, 10.20.0.3
/// </summary>
public class PacketProcessorTests
{
    private const uint Snat = 0x0A140001; // 10.20.0.1

    private readonly FixedRoutes _routes = new FixedRoutes()
        .Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
        .Neighbor("10.10.0.2", ClientMac).Neighbor("10.20.0.2", BackendMac);

    private PacketProcessor Processor(EngineOptions? options = null, int backends = 1)
    {
        var b = Enumerable.Range(0, backends).Select(i => new ResolvedBackend(IpAddr.FromV4(0x0A140002u + (uint)i), 8080, IpAddr.FromV4(Snat))).ToArray();
        var services = new[]
        {
            new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, b),
            new ResolvedService("dns", IpAddr.FromV4(0x0A0A0001), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 5353, IpAddr.FromV4(Snat)) }),
            new ResolvedService("ping", IpAddr.FromV4(0x0A0A0001), IpProtocol.Icmp, 0, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 0, IpAddr.FromV4(Snat)) }),
        };
        return StandalonePipeline.Create(services, new[] { (2, LbcMac), (3, LbsMac) }, _routes, options ?? new EngineOptions(), new EngineCounters());
    }

    private static Verdict Run(PacketProcessor p, byte[] frame, long now = 1000) => p.Process(frame, now, out _);

    /// <summary>A UDP datagram followed, inside the IP payload, by bytes that are not part of it (its length field is
    /// shorter): the IPv4 total length grown by the trailer, the UDP length and checksum those of the datagram.</summary>
    private static byte[] WithTrailer(byte[] frame, int trailer)
    {
        var longer = new byte[frame.Length + trailer];
        frame.CopyTo(longer, 0);
        for (int i = 0; i < trailer; i++)
            longer[frame.Length + i] = (byte)(0xA0 + i);
        BinaryPrimitives.WriteUInt16BigEndian(longer.AsSpan(14 + 2), (ushort)(longer.Length - 14));
        BinaryPrimitives.WriteUInt16BigEndian(longer.AsSpan(14 + 10), 0);
        BinaryPrimitives.WriteUInt16BigEndian(longer.AsSpan(14 + 10), ZonLb.Engine.Checksums.InternetChecksum.IPv4Header(longer.AsSpan(14, 20)));
        return longer;
    }

    [Theory]
    [InlineData(ChecksumKind.Valid)]
    [InlineData(ChecksumKind.Partial)]
    public void A_udp_datagram_shorter_than_its_ip_payload_is_trimmed_and_forwarded(ChecksumKind checksum)
    {
        var p = Processor();
        var datagram = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(40).Checksum(checksum).Build();
        var frame = WithTrailer(datagram, 12);

        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out var sent));

        Assert.Equal(datagram.Length, sent.FrameLength); // the worker sends this much
        var ip = ParseIPv4(frame[..sent.FrameLength]);
        Assert.Equal(datagram.Length - 14, ip.TotalLength);
        Assert.True(ip.ValidIPChecksum);
        var udp = ip.Extract<UdpPacket>();
        Assert.Equal(8 + 40, udp.Length);
        Assert.True(udp.ValidUdpChecksum);
        Assert.Equal(datagram[(14 + 28)..], frame[(14 + 28)..sent.FrameLength]); // the payload, unchanged
    }

    [Fact]
    public void A_udp_length_longer_than_the_ip_payload_is_malformed()
    {
        var frame = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(40).Build();
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14 + 20 + 4), 8 + 41);
        Assert.Equal(DropReason.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Syn_to_the_vip_is_rewritten_to_the_backend_from_the_snat_address()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();

        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out var sent));

        Assert.Equal(3, sent.EgressIfIndex);
        var ip = ParseIPv4(frame);
        var tcp = ip.Extract<TcpPacket>();
        Assert.Equal(IPAddress.Parse("10.20.0.1"), ip.SourceAddress);
        Assert.Equal(IPAddress.Parse("10.20.0.2"), ip.DestinationAddress);
        Assert.Equal(8080, tcp.DestinationPort);
        Assert.InRange(tcp.SourcePort, 61000, 65535);
        Assert.Equal(63, ip.TimeToLive);
        Assert.True(ip.ValidIPChecksum);
        Assert.True(tcp.ValidTcpChecksum);
        Assert.Equal(BackendMac, frame[0..6]);
        Assert.Equal(LbsMac, frame[6..12]);
        Assert.Equal(1, p.Counters.NewConnections);
    }

    [Fact]
    public void Reply_from_the_backend_is_translated_back_to_the_client_from_the_vip()
    {
        var p = Processor();
        var syn = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();
        Run(p, syn);
        ushort natPort = ParseIPv4(syn).Extract<TcpPacket>().SourcePort;

        var synAck = Tcp("10.20.0.2", 8080, "10.20.0.1", natPort).TcpFlags(0x12).Payload(10).Build();
        Assert.Equal(Verdict.Transmit, p.Process(synAck, 1001, out var sent));

        Assert.Equal(2, sent.EgressIfIndex);
        var ip = ParseIPv4(synAck);
        var tcp = ip.Extract<TcpPacket>();
        Assert.Equal(IPAddress.Parse("10.10.0.1"), ip.SourceAddress);
        Assert.Equal(IPAddress.Parse("10.10.0.2"), ip.DestinationAddress);
        Assert.Equal(80, tcp.SourcePort);
        Assert.Equal(40000, tcp.DestinationPort);
        Assert.True(ip.ValidIPChecksum);
        Assert.True(tcp.ValidTcpChecksum);
        Assert.Equal(ClientMac, synAck[0..6]);
        Assert.Equal(LbcMac, synAck[6..12]);
        Assert.Equal(1, p.Counters.NewConnections);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Partial_checksum_from_tx_offload_is_completed_after_nat(bool tcp)
    {
        var p = Processor();
        var frame = (tcp ? Tcp("10.10.0.2", 40000, "10.10.0.1", 80) : Udp("10.10.0.2", 40000, "10.10.0.1", 53))
            .Payload(300).Checksum(ChecksumKind.Partial).Build();

        Assert.Equal(Verdict.Transmit, Run(p, frame));

        var ip = ParseIPv4(frame);
        if (tcp)
            Assert.True(ip.Extract<TcpPacket>().ValidTcpChecksum);
        else
            Assert.True(ip.Extract<UdpPacket>().ValidUdpChecksum);
        Assert.Equal(1, p.Counters.PartialChecksumsRepaired);
    }

    [Fact]
    public void A_wrong_checksum_is_not_laundered_into_a_valid_one()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(50).Checksum(ChecksumKind.Wrong).Build();

        Assert.Equal(Verdict.Transmit, Run(p, frame));

        Assert.False(ParseIPv4(frame).Extract<TcpPacket>().ValidTcpChecksum);
        Assert.Equal(0, p.Counters.PartialChecksumsRepaired);
    }

    [Fact]
    public void Udp_without_checksum_keeps_a_zero_checksum()
    {
        var p = Processor();
        var frame = Udp("10.10.0.2", 40000, "10.10.0.1", 53).Payload(12).UdpWithoutChecksum().Build();

        Assert.Equal(Verdict.Transmit, Run(p, frame));

        var udp = ParseIPv4(frame).Extract<UdpPacket>();
        Assert.Equal(0, udp.Checksum);
        Assert.Equal(5353, udp.DestinationPort);
    }

    [Fact]
    public void Icmp_echo_id_is_translated_both_ways_with_valid_checksums()
    {
        var p = Processor();
        var request = IcmpEcho("10.10.0.2", "10.10.0.1", 0x4242).Payload(56).Build();
        Assert.Equal(Verdict.Transmit, Run(p, request));
        var req = ParseIPv4(request);
        var reqIcmp = req.Extract<IcmpV4Packet>();
        Assert.Equal(IPAddress.Parse("10.20.0.2"), req.DestinationAddress);
        Assert.True(reqIcmp.ValidIcmpChecksum);
        ushort natId = reqIcmp.Id;
        Assert.NotEqual(0x4242, natId);

        var reply = IcmpEcho("10.20.0.2", "10.20.0.1", natId, reply: true).Payload(56).Build();
        Assert.Equal(Verdict.Transmit, Run(p, reply));
        var rep = ParseIPv4(reply);
        var repIcmp = rep.Extract<IcmpV4Packet>();
        Assert.Equal(IPAddress.Parse("10.10.0.1"), rep.SourceAddress);
        Assert.Equal(IPAddress.Parse("10.10.0.2"), rep.DestinationAddress);
        Assert.Equal(0x4242, repIcmp.Id);
        Assert.True(repIcmp.ValidIcmpChecksum);
    }

    [Fact]
    public void Ttl_of_one_is_not_forwarded()
    {
        var p = Processor();
        Assert.Equal(Verdict.Drop, Run(p, Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Ttl(1).Build()));
        Assert.Equal(1, p.Counters.Drops(DropReason.TtlExceeded));
        Assert.Equal(0, p.Connections.Count);
    }

    [Fact]
    public void Traffic_for_no_service_is_dropped_and_counted()
    {
        var p = Processor();
        Assert.Equal(Verdict.Drop, Run(p, Tcp("10.10.0.2", 40000, "10.10.0.1", 81).Build()));
        Assert.Equal(1, p.Counters.Drops(DropReason.NoService));
    }

    [Fact]
    public void A_reply_to_a_nat_port_without_a_connection_is_dropped_not_translated()
    {
        var p = Processor();
        var frame = Tcp("10.20.0.2", 8080, "10.20.0.1", 61000).TcpFlags(0x12).Build();
        var before = (byte[])frame.Clone();
        Assert.Equal(Verdict.Drop, Run(p, frame));
        Assert.Equal(1, p.Counters.Drops(DropReason.NoConnection));
        Assert.Equal(before, frame);
    }

    [Fact]
    public void A_bad_ip_header_checksum_is_dropped()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();
        frame[14 + 10] ^= 0xFF;
        Assert.Equal(Verdict.Drop, Run(p, frame));
        Assert.Equal(1, p.Counters.Drops(DropReason.BadIpChecksum));
    }

    [Fact]
    public void Unknown_neighbor_holds_the_frame_until_it_is_resolved()
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3);
        var p = StandalonePipeline.Create(
            new[] { new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(Snat)) }) },
            new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();

        Assert.Equal(Verdict.Hold, p.Process(frame, 1000, out var held));
        Assert.Equal(1, routes.ResolveRequests);
        Assert.Equal(Verdict.Hold, p.RetryHeld(frame, held.NextHop, 1010, out _));
        Assert.Equal(1, routes.ResolveRequests); // asked once, not on every retry

        routes.Neighbor("10.20.0.2", BackendMac);
        Assert.Equal(Verdict.Transmit, p.RetryHeld(frame, held.NextHop, 1020, out var retried));
        Assert.Equal(3, retried.EgressIfIndex);
        Assert.Equal(BackendMac, frame[0..6]);
        Assert.True(ParseIPv4(frame).Extract<TcpPacket>().ValidTcpChecksum);
    }

    [Fact]
    public void Next_hops_are_cached_not_looked_up_per_packet()
    {
        var p = Processor();
        for (ushort port = 1; port <= 50; port++)
            Run(p, Tcp("10.10.0.2", port, "10.10.0.1", 80).Build());
        Assert.Equal(1, _routes.LookupCount);
    }

    [Fact]
    public void Packets_of_one_flow_share_a_connection_and_distinct_flows_get_distinct_nat_ports()
    {
        var p = Processor(backends: 2);
        var natPorts = new HashSet<(IPAddress, ushort)>();
        for (ushort client = 1000; client < 1100; client++)
        {
            var first = Tcp("10.10.0.2", client, "10.10.0.1", 80).Build();
            var second = Tcp("10.10.0.2", client, "10.10.0.1", 80).TcpFlags(0x10).Build();
            Run(p, first);
            Run(p, second);
            var a = ParseIPv4(first);
            var b = ParseIPv4(second);
            Assert.Equal(a.DestinationAddress, b.DestinationAddress);
            Assert.Equal(a.Extract<TcpPacket>().SourcePort, b.Extract<TcpPacket>().SourcePort);
            Assert.True(natPorts.Add((a.DestinationAddress, a.Extract<TcpPacket>().SourcePort)));
        }
        Assert.Equal(100, p.Connections.Count);
        Assert.Equal(100, p.Counters.NewConnections);
        Assert.Contains(natPorts, x => x.Item1.Equals(IPAddress.Parse("10.20.0.2")));
        Assert.Contains(natPorts, x => x.Item1.Equals(IPAddress.Parse("10.20.0.3")));
    }

    [Fact]
    public void Each_backend_counts_the_packets_and_bytes_of_its_own_connections()
    {
        var p = Processor(backends: 2);
        var sent = new Dictionary<IPAddress, (long Packets, long Bytes)>();
        for (ushort client = 2000; client < 2064; client++)
        {
            var first = Tcp("10.10.0.2", client, "10.10.0.1", 80).Build();
            var second = Tcp("10.10.0.2", client, "10.10.0.1", 80).TcpFlags(0x10).Payload(client % 7).Build();
            Run(p, first);
            Run(p, second);
            var backend = ParseIPv4(first).DestinationAddress;
            var (n, bytes) = sent.GetValueOrDefault(backend);
            sent[backend] = (n + 2, bytes + first.Length + second.Length);
        }
        Assert.Equal(2, sent.Count);
        var slots = p.Table.Services[0].Backends;
        for (int i = 0; i < 2; i++)
        {
            var c = slots[i].PerWorker[0];
            var expected = sent[new IPAddress(BinaryPrimitives.ReverseEndianness(0x0A140002u + (uint)i))];
            Assert.Equal(expected, (c.PacketsToBackend, c.BytesToBackend));
            Assert.Equal(expected.Packets / 2, c.NewConnections);
        }
    }

    [Fact]
    public void Nat_port_exhaustion_is_counted_and_existing_connections_keep_working_when_full_tables_refuse()
    {
        var p = Processor(new EngineOptions { NatPortMin = 61000, NatPortMax = 61001, TableFull = TableFullPolicy.Refuse });
        Run(p, Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build());
        Run(p, Tcp("10.10.0.2", 2, "10.10.0.1", 80).Build());
        Assert.Equal(Verdict.Drop, Run(p, Tcp("10.10.0.2", 3, "10.10.0.1", 80).Build()));
        Assert.Equal(1, p.Counters.Drops(DropReason.NatPortsExhausted));
        Assert.Equal(Verdict.Transmit, Run(p, Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(0x10).Build()));
    }

    [Fact]
    public void Idle_connections_expire_and_free_their_nat_port()
    {
        var p = Processor(new EngineOptions { NatPortMin = 61000, NatPortMax = 61000, UdpTimeoutSeconds = 30, TableFull = TableFullPolicy.Refuse });
        Run(p, Udp("10.10.0.2", 1, "10.10.0.1", 53).Build(), now: 0);
        Assert.Equal(Verdict.Drop, Run(p, Udp("10.10.0.2", 2, "10.10.0.1", 53).Build(), now: 10_000));

        p.ExpireConnections(now: 29_000, budget: 1_000_000);
        Assert.Equal(1, p.Connections.Count);
        p.ExpireConnections(now: 31_000, budget: 1_000_000);
        Assert.Equal(0, p.Connections.Count);

        Assert.Equal(Verdict.Transmit, Run(p, Udp("10.10.0.2", 2, "10.10.0.1", 53).Build(), now: 31_001));
    }

    [Fact]
    public void A_full_connection_table_drops_new_flows_and_keeps_established_ones_when_full_tables_refuse()
    {
        var p = Processor(new EngineOptions { ConnectionCapacity = 1, TableFull = TableFullPolicy.Refuse });
        Run(p, Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build());
        Assert.Equal(Verdict.Drop, Run(p, Tcp("10.10.0.2", 2, "10.10.0.1", 80).Build()));
        Assert.Equal(1, p.Counters.Drops(DropReason.ConnectionTableFull));
        Assert.Equal(Verdict.Transmit, Run(p, Tcp("10.10.0.2", 1, "10.10.0.1", 80).TcpFlags(0x10).Build()));
    }

    [Fact]
    public void No_route_to_the_backend_is_dropped_and_counted()
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2);
        var p = StandalonePipeline.Create(
            new[] { new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(Snat)) }) },
            new[] { (2, LbcMac) }, routes, new EngineOptions(), new EngineCounters());
        Assert.Equal(Verdict.Drop, Run(p, Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build()));
        Assert.Equal(1, p.Counters.Drops(DropReason.NoRoute));
    }

    [Fact]
    public void An_egress_interface_we_are_not_attached_to_is_dropped_and_counted()
    {
        var p = StandalonePipeline.Create(
            new[] { new ResolvedService("web", IpAddr.FromV4(0x0A0A0001), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.FromV4(0x0A140002), 8080, IpAddr.FromV4(Snat)) }) },
            new[] { (2, LbcMac) }, _routes, new EngineOptions(), new EngineCounters());
        Assert.Equal(Verdict.Drop, Run(p, Tcp("10.10.0.2", 1, "10.10.0.1", 80).Build()));
        Assert.Equal(1, p.Counters.Drops(DropReason.EgressNotAttached));
    }

    [Fact]
    public void Vlan_tagged_frames_are_translated_behind_the_tag()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Vlan(100).Build();
        Assert.Equal(Verdict.Transmit, Run(p, frame));
        Assert.Equal(0x8100, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        Assert.Equal(0x0A140002u, BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(18 + 16)));
    }
}
