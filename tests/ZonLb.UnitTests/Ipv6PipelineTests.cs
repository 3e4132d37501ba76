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
/// IPv6 full NAT on frames built and checked with PacketDotNet and a plain reference checksum.
/// Topology: client fd00:10::2 -- [ifindex 2 "lbc", VIP fd00:10::1 | ifindex 3 "lbs", SNAT fd00:20::1] -- backend fd00:20::2
/// </summary>
public class Ipv6PipelineTests
{
    private static readonly IpAddr Vip = IpAddr.Parse("fd00:10::1");
    private static readonly IpAddr Snat = IpAddr.Parse("fd00:20::1");
    private static readonly IpAddr Backend = IpAddr.Parse("fd00:20::2");

    private readonly FixedRoutes _routes = new FixedRoutes()
        .Subnet("fd00:10::", 2).Subnet("fd00:20::", 3)
        .Neighbor("fd00:10::2", ClientMac).Neighbor("fd00:20::2", BackendMac);

    private PacketProcessor Processor() => StandalonePipeline.Create(new[]
        {
            new ResolvedService("web6", Vip, IpProtocol.Tcp, 80, new[] { new ResolvedBackend(Backend, 8080, Snat) }),
            new ResolvedService("dns6", Vip, IpProtocol.Udp, 53, new[] { new ResolvedBackend(Backend, 5353, Snat) }),
            new ResolvedService("ping6", Vip, IpProtocol.Icmp, 0, new[] { new ResolvedBackend(Backend, 0, Snat) }),
        }, new[] { (2, LbcMac), (3, LbsMac) }, _routes, new EngineOptions(), new EngineCounters());

    [Fact]
    public void Parser_walks_extension_headers_to_the_transport_header()
    {
        var frame = Tcp("fd00:10::2", 40000, "fd00:10::1", 80)
            .ExtensionHeader(0).ExtensionHeader(60).ExtensionHeader(43).ExtensionHeader(44).Build();

        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));

        Assert.True(p.IsV6);
        Assert.Equal(14 + 40 + 32, p.L4Offset);
        Assert.Equal(IpProtocol.Tcp, p.Protocol);
        Assert.Equal(40000, p.SrcPort);
        Assert.Equal(80, p.DstPort);
        Assert.Equal(IpAddr.Parse("fd00:10::2"), p.SrcIp);
        Assert.Equal(Vip, p.DstIp);
    }

    [Fact]
    public void A_hop_by_hop_header_anywhere_but_first_is_malformed()
    {
        var frame = Udp("fd00:10::2", 1, "fd00:10::1", 53).ExtensionHeader(60).ExtensionHeader(0).Build();
        Assert.Equal(DropReason.Malformed, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void A_non_first_fragment_is_marked_and_carries_no_ports()
    {
        var frame = Udp("fd00:10::2", 1, "fd00:10::1", 53).ExtensionHeader(44).Build();
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14 + 40 + 2), 185 << 3); // offset 1480
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        Assert.Equal((true, true, 0x12345678u, IpProtocol.Udp, (ushort)0), (p.IsFragment, p.IsLaterFragment, p.FragmentId, p.Protocol, p.DstPort));
        Assert.Equal(14 + 48, p.L4Offset);
    }

    [Fact]
    public void Neighbor_discovery_is_not_echo()
    {
        var frame = IcmpEcho("fd00:10::2", "fd00:10::1", 1).Build();
        frame[14 + 40] = 135; // neighbour solicitation
        Assert.Equal(DropReason.IcmpNotEcho, PacketParser.Parse(frame, out _));
    }

    [Fact]
    public void Syn_to_an_ipv6_vip_goes_to_the_backend_from_the_snat_address_with_a_valid_checksum()
    {
        var p = Processor();
        var frame = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Build();

        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out var sent));

        Assert.Equal(3, sent.EgressIfIndex);
        Assert.Equal(Backend, sent.NextHop);
        var ip = ParseIPv6(frame);
        var tcp = ip.Extract<TcpPacket>();
        Assert.Equal(IPAddress.Parse("fd00:20::1"), ip.SourceAddress);
        Assert.Equal(IPAddress.Parse("fd00:20::2"), ip.DestinationAddress);
        Assert.Equal(8080, tcp.DestinationPort);
        Assert.InRange(tcp.SourcePort, 61000, 65535);
        Assert.Equal(63, ip.HopLimit);
        Assert.True(ReferenceChecksum.VerifiesV6(frame.AsSpan(14), 40, 6));
        Assert.Equal(BackendMac, frame[0..6]);
        Assert.Equal(LbsMac, frame[6..12]);
    }

    [Fact]
    public void The_backends_reply_goes_back_to_the_client_from_the_ipv6_vip()
    {
        var p = Processor();
        var syn = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Build();
        p.Process(syn, 1000, out _);
        ushort natPort = ParseIPv6(syn).Extract<TcpPacket>().SourcePort;

        var synAck = Tcp("fd00:20::2", 8080, "fd00:20::1", natPort).TcpFlags(0x12).Payload(33).Build();
        Assert.Equal(Verdict.Transmit, p.Process(synAck, 1001, out var sent));

        Assert.Equal(2, sent.EgressIfIndex);
        var ip = ParseIPv6(synAck);
        var tcp = ip.Extract<TcpPacket>();
        Assert.Equal(IPAddress.Parse("fd00:10::1"), ip.SourceAddress);
        Assert.Equal(IPAddress.Parse("fd00:10::2"), ip.DestinationAddress);
        Assert.Equal(80, tcp.SourcePort);
        Assert.Equal(40000, tcp.DestinationPort);
        Assert.True(ReferenceChecksum.VerifiesV6(synAck.AsSpan(14), 40, 6));
        Assert.Equal(ClientMac, synAck[0..6]);
    }

    [Fact]
    public void A_partial_udp_checksum_over_ipv6_is_completed()
    {
        var p = Processor();
        var frame = Udp("fd00:10::2", 5000, "fd00:10::1", 53).Payload(200).Checksum(ChecksumKind.Partial).Build();
        Assert.False(ReferenceChecksum.VerifiesV6(frame.AsSpan(14), 40, 17));

        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out _));

        Assert.True(ReferenceChecksum.VerifiesV6(frame.AsSpan(14), 40, 17));
        Assert.Equal(1, p.Counters.PartialChecksumsRepaired);
    }

    [Fact]
    public void Icmpv6_echo_is_translated_both_ways_with_its_pseudo_header_checksum()
    {
        var p = Processor();
        var request = IcmpEcho("fd00:10::2", "fd00:10::1", 0x4242).Payload(56).Build();
        Assert.Equal(Verdict.Transmit, p.Process(request, 1000, out _));
        Assert.Equal(128, request[14 + 40]);
        Assert.True(ReferenceChecksum.VerifiesV6(request.AsSpan(14), 40, 58));
        ushort natId = BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(14 + 40 + 4));
        Assert.Equal(IPAddress.Parse("fd00:20::2"), ParseIPv6(request).DestinationAddress);

        var reply = IcmpEcho("fd00:20::2", "fd00:20::1", natId, reply: true).Payload(56).Build();
        Assert.Equal(Verdict.Transmit, p.Process(reply, 1001, out var sent));
        Assert.Equal(2, sent.EgressIfIndex);
        Assert.Equal(129, reply[14 + 40]);
        Assert.Equal(0x4242, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(14 + 40 + 4)));
        Assert.Equal(IPAddress.Parse("fd00:10::1"), ParseIPv6(reply).SourceAddress);
        Assert.True(ReferenceChecksum.VerifiesV6(reply.AsSpan(14), 40, 58));
    }

    [Fact]
    public void Extension_headers_stay_and_the_checksum_still_verifies()
    {
        var p = Processor();
        var frame = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).ExtensionHeader(0).ExtensionHeader(60).Build();
        Assert.Equal(Verdict.Transmit, p.Process(frame, 1000, out _));
        Assert.Equal(0, frame[14 + 6]);
        Assert.True(ReferenceChecksum.VerifiesV6(frame.AsSpan(14), 40 + 16, 6));
        Assert.Equal(IPAddress.Parse("fd00:20::2"), new IPAddress(frame.AsSpan(14 + 24, 16)));
    }

    [Fact]
    public void Hop_limit_one_is_not_forwarded()
    {
        var p = Processor();
        var frame = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Ttl(1).Build();
        Assert.Equal(Verdict.Drop, p.Process(frame, 1000, out var dropped));
        Assert.Equal(DropReason.TtlExceeded, dropped.DropReason);
    }

    [Fact]
    public void An_ipv4_packet_to_an_address_that_only_an_ipv6_service_has_finds_no_service()
    {
        var p = Processor();
        var frame = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();
        Assert.Equal(Verdict.Drop, p.Process(frame, 1000, out var dropped));
        Assert.Equal(DropReason.NoService, dropped.DropReason);
    }
}
