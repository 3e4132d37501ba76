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

/// <summary>IP fragments: later fragments follow their datagram's first fragment; put back together, the
/// translated fragments are the translated datagram (PacketDotNet and a reference checksum say so).</summary>
public class FragmentTests
{
    private static PacketProcessor Processor()
    {
        var routes = Routes();
        return StandalonePipeline.Create(new[]
            {
                new ResolvedService("dns", IpAddr.Parse("10.10.0.1"), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 5353, IpAddr.Parse("10.20.0.1")) }),
                new ResolvedService("ping", IpAddr.Parse("10.10.0.1"), IpProtocol.Icmp, 0, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 0, IpAddr.Parse("10.20.0.1")) }),
                new ResolvedService("dns6", IpAddr.Parse("fd00:10::1"), IpProtocol.Udp, 53, new[] { new ResolvedBackend(IpAddr.Parse("fd00:20::2"), 5353, IpAddr.Parse("fd00:20::1")) }),
            }, new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());
    }

    [Fact]
    public void The_fragments_of_a_udp_datagram_all_reach_the_backend_and_reassemble_to_the_translated_datagram()
    {
        var p = Processor();
        var datagram = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(4000).Build();
        var fragments = Fragments.Split(datagram, 1480, 0x1234);
        Assert.Equal(3, fragments.Count);

        foreach (var f in fragments)
            Assert.Equal(Verdict.Transmit, p.Process(f, 1000, out var sent) == Verdict.Transmit && sent.EgressIfIndex == 3 ? Verdict.Transmit : Verdict.Drop);

        var whole = ParseIPv4(Fragments.Reassemble(fragments));
        var udp = whole.Extract<UdpPacket>();
        Assert.Equal(("10.20.0.1", "10.20.0.2", 5353), (whole.SourceAddress.ToString(), whole.DestinationAddress.ToString(), (int)udp.DestinationPort));
        Assert.True(udp.ValidUdpChecksum);
        Assert.Equal(datagram[(14 + 28)..], Fragments.Reassemble(fragments)[(14 + 28)..]); // the payload
        Assert.Equal(2, p.Counters.FragmentsForwarded);
    }

    [Fact]
    public void A_later_fragment_over_the_egress_mtu_is_not_sent()
    {
        var p = Processor();
        p.SetMtu(3, 1280);
        var datagram = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(4000).Build();
        var fragments = Fragments.Split(datagram, 1200, 9).Take(1).Concat(Fragments.Split(datagram, 1480, 9).Skip(1)).ToList();
        // a first fragment of 1,220 bytes fits the backend side's 1,280; the next one, of 1,500, does not

        Assert.Equal(Verdict.Transmit, p.Process(fragments[0], 1000, out _));
        Assert.Equal(Verdict.Drop, p.Process(fragments[1], 1001, out var dropped));
        Assert.Equal(DropReason.MtuExceeded, dropped.DropReason); // IPv4 fragments carry no DF
    }

    [Fact]
    public void A_later_fragment_before_its_first_waits_and_then_goes_the_same_way()
    {
        var p = Processor();
        var fragments = Fragments.Split(Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(3000).Build(), 1480, 7);

        Assert.Equal(Verdict.HoldFragment, p.Process(fragments[2], 1000, out _));
        Assert.Equal(Verdict.Transmit, p.Process(fragments[0], 1001, out _));
        Assert.Equal(Verdict.Transmit, p.Process(fragments[2], 1002, out var sent));
        Assert.Equal(3, sent.EgressIfIndex);
        Assert.Equal("10.20.0.2", ParseIPv4(fragments[2]).DestinationAddress.ToString());
        Assert.True(ParseIPv4(fragments[2]).ValidIPChecksum);
    }

    [Fact]
    public void The_backends_fragmented_reply_goes_back_to_the_client_whole()
    {
        var p = Processor();
        var request = Fragments.Split(IcmpEcho("10.10.0.2", "10.10.0.1", 0x77).Payload(3000).Build(), 1480, 1);
        foreach (var f in request)
            p.Process(f, 1000, out _);
        ushort natId = (ushort)(request[0][14 + 20 + 4] << 8 | request[0][14 + 20 + 5]);

        var reply = Fragments.Split(IcmpEcho("10.20.0.2", "10.20.0.1", natId, reply: true).Payload(3000).Build(), 1480, 99);
        foreach (var f in reply)
            Assert.Equal(Verdict.Transmit, p.Process(f, 1001, out _));

        var whole = Fragments.Reassemble(reply);
        var ip = ParseIPv4(whole);
        Assert.Equal(("10.10.0.1", "10.10.0.2"), (ip.SourceAddress.ToString(), ip.DestinationAddress.ToString()));
        Assert.Equal(0x77, whole[14 + 20 + 4] << 8 | whole[14 + 20 + 5]);
        Assert.Equal(0xFFFF, ReferenceChecksum.Sum(whole.AsSpan(14 + 20))); // ICMP checksum over the whole message
    }

    [Fact]
    public void Ipv6_fragments_follow_their_first_fragment()
    {
        var p = Processor();
        var datagram = Udp("fd00:10::2", 5000, "fd00:10::1", 53).Payload(4000).Build();
        var fragments = Fragments.Split(datagram, 1448, 0xABCDEF);
        foreach (var f in fragments)
            Assert.Equal(Verdict.Transmit, p.Process(f, 1000, out _));
        var whole = Fragments.Reassemble(fragments);
        Assert.Equal(System.Net.IPAddress.Parse("fd00:20::2"), ParseIPv6(whole).DestinationAddress);
        Assert.True(ReferenceChecksum.VerifiesV6(whole.AsSpan(14), 40, 17));
    }

    [Fact]
    public void A_later_fragment_of_an_unknown_datagram_waits_rather_than_being_counted_as_no_service()
    {
        var p = Processor();
        var f = Fragments.Split(Udp("10.10.0.2", 5000, "10.10.0.1", 53).Payload(3000).Build(), 1480, 5)[1];
        Assert.Equal(Verdict.HoldFragment, p.Process(f, 1000, out _));
        Assert.Equal(0, p.Counters.TotalDrops);
    }
}
