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
/// ICMP errors about translated packets are translated back: the oracle is the packet the other side really
/// sent, which the quoted packet must equal again (ports, checksum, payload), and PacketDotNet / a plain
/// checksum for every header.
/// </summary>
public class IcmpErrorTranslationTests
{
    private static readonly IpAddr Snat = IpAddr.Parse("10.20.0.1");
    private static readonly IpAddr Snat6 = IpAddr.Parse("fd00:20::1");

    private readonly FixedRoutes _routes = Routes();

    private PacketProcessor Processor() => StandalonePipeline.Create(new[]
        {
            new ResolvedService("web", IpAddr.Parse("10.10.0.1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 8080, Snat) }),
            new ResolvedService("dns", IpAddr.Parse("10.10.0.1"), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 5353, Snat) }),
            new ResolvedService("ping", IpAddr.Parse("10.10.0.1"), IpProtocol.Icmp, 0, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 0, Snat) }),
            new ResolvedService("web6", IpAddr.Parse("fd00:10::1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("fd00:20::2"), 8080, Snat6) }),
        }, new[] { (2, LbcMac), (3, LbsMac) }, _routes, new EngineOptions(), new EngineCounters());

    private static bool IcmpChecksumValid(byte[] frame) =>
        ReferenceChecksum.Sum(frame.AsSpan(14 + 20, frame.Length - 14 - 20)) == 0xFFFF;

    [Fact]
    public void A_backends_port_unreachable_reaches_the_client_from_the_vip_quoting_what_the_client_sent()
    {
        var p = Processor();
        var sent = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(20).Build();
        var original = (byte[])sent.Clone();
        Assert.Equal(Verdict.Transmit, p.Process(sent, 1000, out _));

        var error = IcmpError("10.20.0.2", "10.20.0.1", 3, 3, sent, sent.Length - 14);
        Assert.Equal(Verdict.Transmit, p.Process(error, 1001, out var toClient));

        Assert.Equal(2, toClient.EgressIfIndex);
        var ip = ParseIPv4(error);
        Assert.Equal("10.10.0.1", ip.SourceAddress.ToString());
        Assert.Equal("10.10.0.2", ip.DestinationAddress.ToString());
        Assert.True(ip.ValidIPChecksum);
        Assert.True(IcmpChecksumValid(error));
        var quoted = new IPv4Packet(new PacketDotNet.Utils.ByteArraySegment(error, 14 + 28, error.Length - 14 - 28));
        Assert.Equal("10.10.0.2", quoted.SourceAddress.ToString());
        Assert.Equal("10.10.0.1", quoted.DestinationAddress.ToString());
        Assert.True(quoted.ValidIPChecksum);
        // the quoted datagram is again the one the client sent: ports, length, checksum and payload
        Assert.Equal(original[(14 + 20)..], error[(14 + 28 + 20)..]);
        Assert.Equal(1, p.Counters.IcmpErrorsTranslated);
    }

    [Fact]
    public void A_routers_fragmentation_needed_about_a_segment_to_the_backend_keeps_the_router_as_source_and_the_mtu()
    {
        var p = Processor();
        var syn = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(1400).Build();
        var original = (byte[])syn.Clone();
        p.Process(syn, 1000, out _);

        var error = IcmpError("10.20.0.254", "10.20.0.1", 3, 4, syn, 20 + 8, mtu: 1280);
        Assert.Equal(Verdict.Transmit, p.Process(error, 1001, out _));

        var ip = ParseIPv4(error);
        Assert.Equal("10.20.0.254", ip.SourceAddress.ToString());
        Assert.Equal("10.10.0.2", ip.DestinationAddress.ToString());
        Assert.Equal(1280, BinaryPrimitives.ReadUInt16BigEndian(error.AsSpan(14 + 20 + 6)));
        Assert.True(IcmpChecksumValid(error));
        Assert.Equal(original[(14 + 20)..(14 + 28)], error[(14 + 28 + 20)..(14 + 28 + 28)]); // ports and sequence number
    }

    [Fact]
    public void A_routers_error_about_a_packet_to_the_client_goes_to_the_backend_about_what_it_sent()
    {
        var p = Processor();
        var syn = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();
        p.Process(syn, 1000, out _);
        ushort natPort = ParseIPv4(syn).Extract<TcpPacket>().SourcePort;
        var reply = Tcp("10.20.0.2", 8080, "10.20.0.1", natPort).TcpFlags(0x10).Payload(1400).Build();
        var original = (byte[])reply.Clone();
        Assert.Equal(Verdict.Transmit, p.Process(reply, 1001, out _));

        var error = IcmpError("10.10.0.254", "10.10.0.1", 3, 4, reply, 20 + 8, mtu: 1280);
        Assert.Equal(Verdict.Transmit, p.Process(error, 1002, out var sent));

        Assert.Equal(3, sent.EgressIfIndex);
        var ip = ParseIPv4(error);
        Assert.Equal("10.10.0.254", ip.SourceAddress.ToString());
        Assert.Equal("10.20.0.2", ip.DestinationAddress.ToString());
        Assert.True(ip.ValidIPChecksum);
        Assert.True(IcmpChecksumValid(error));
        var quoted = new IPv4Packet(new PacketDotNet.Utils.ByteArraySegment(error, 14 + 28, 20));
        Assert.Equal("10.20.0.2", quoted.SourceAddress.ToString());
        Assert.Equal("10.20.0.1", quoted.DestinationAddress.ToString());
        Assert.Equal(original[(14 + 20)..(14 + 28)], error[(14 + 28 + 20)..(14 + 28 + 28)]);
    }

    [Fact]
    public void Time_exceeded_about_an_echo_request_gives_the_client_its_own_echo_id_back()
    {
        var p = Processor();
        var ping = IcmpEcho("10.10.0.2", "10.10.0.1", 0x4242).Payload(56).Build();
        var original = (byte[])ping.Clone();
        p.Process(ping, 1000, out _);

        var error = IcmpError("10.20.0.254", "10.20.0.1", 11, 0, ping, ping.Length - 14);
        Assert.Equal(Verdict.Transmit, p.Process(error, 1001, out _));

        Assert.True(IcmpChecksumValid(error));
        Assert.Equal(original[(14 + 20)..], error[(14 + 28 + 20)..]); // type, checksum, id 0x4242, seq, payload
    }

    [Fact]
    public void An_ipv6_packet_too_big_about_a_segment_to_the_backend_reaches_the_client()
    {
        var p = Processor();
        var seg = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Payload(1400).Build();
        var original = (byte[])seg.Clone();
        p.Process(seg, 1000, out _);

        var error = IcmpError("fd00:20::254", "fd00:20::1", 2, 0, seg, 40 + 8, mtu: 1280);
        Assert.Equal(Verdict.Transmit, p.Process(error, 1001, out var sent));

        Assert.Equal(2, sent.EgressIfIndex);
        var ip = ParseIPv6(error);
        Assert.Equal(IPAddress.Parse("fd00:10::2"), ip.DestinationAddress);
        Assert.Equal(IPAddress.Parse("fd00:20::254"), ip.SourceAddress);
        Assert.True(ReferenceChecksum.VerifiesV6(error.AsSpan(14), 40, 58));
        Assert.Equal(1280u, BinaryPrimitives.ReadUInt32BigEndian(error.AsSpan(14 + 40 + 4)));
        Assert.Equal(original[(14 + 8)..(14 + 40)], error[(14 + 48 + 8)..(14 + 48 + 40)]); // quoted addresses: client, VIP
        Assert.Equal(original[(14 + 40)..(14 + 48)], error[(14 + 48 + 40)..(14 + 48 + 48)]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_error_about_our_connection_with_a_wrong_checksum_is_dropped_not_translated(bool v6)
    {
        var p = Processor();
        var sent = v6 ? Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Build() : Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Build();
        Assert.Equal(Verdict.Transmit, p.Process(sent, 1000, out _));
        var error = v6 ? IcmpError("fd00:20::2", "fd00:20::1", 1, 4, sent, sent.Length - 14)
                       : IcmpError("10.20.0.2", "10.20.0.1", 3, 3, sent, sent.Length - 14);
        error[^1] ^= 0x5A; // a byte of the quote, changed on the way: the ICMP checksum no longer matches
        var original = (byte[])error.Clone();

        Assert.Equal(Verdict.Drop, p.Process(error, 1001, out var dropped));
        Assert.Equal(DropReason.BadIcmpChecksum, dropped.DropReason);
        Assert.Equal(original, error);
    }

    [Fact]
    public void An_error_about_no_connection_of_ours_is_dropped()
    {
        var p = Processor();
        var stranger = Udp("10.20.0.1", 61000, "10.20.0.2", 5353).Build();
        var error = IcmpError("10.20.0.2", "10.20.0.1", 3, 3, stranger, stranger.Length - 14);
        Assert.Equal(Verdict.Drop, p.Process(error, 1000, out var dropped));
        Assert.Equal(DropReason.NoConnection, dropped.DropReason);
    }

    [Fact]
    public void The_parser_finds_the_quoted_tuple_of_an_error()
    {
        var quoted = Udp("10.20.0.1", 61000, "10.20.0.2", 5353).Build();
        var error = IcmpError("10.20.0.2", "10.20.0.1", 3, 3, quoted, quoted.Length - 14);
        Assert.Equal(DropReason.None, PacketParser.Parse(error, out var p));
        Assert.True(p.IsIcmpError);
        Assert.Equal((IpAddr.Parse("10.20.0.1"), IpAddr.Parse("10.20.0.2"), (ushort)61000, (ushort)5353, IpProtocol.Udp),
            (p.InnerSrc, p.InnerDst, p.InnerSrcPort, p.InnerDstPort, p.InnerProtocol));
    }
}
