using PacketDotNet;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Runtime;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>
/// Which dropped frames the worker answers with an ICMP error, and how often (RFC 1812 4.3.2.7, RFC 4443 2.4): never
/// about an error, a later fragment, or from or to a group address; each kind on its own budget; time exceeded per
/// destination. The oracle for what was sent is PacketDotNet reading the answer.
/// </summary>
public class IcmpResponderTests
{
    private static readonly Port Ingress = new()
    {
        Name = "lbc", IfIndex = 2, Mac = LbcMac, AttachedMode = ZonLb.Native.Bpf.XdpAttachMode.Native,
        Address = IpAddr.Parse("10.10.0.1"), Address6 = IpAddr.Parse("fd00:10::1"),
    };

    private static readonly Forwarding TtlExceeded = new() { DropReason = DropReason.TtlExceeded };
    private static readonly Forwarding TooBig = new() { DropReason = DropReason.FragmentationNeeded, Mtu = 1280 };

    /// <summary>Offers a frame to the responder as the worker does; returns the answer's length (0: none).</summary>
    private static int Offer(IcmpResponder r, byte[] frame, in Forwarding f, long now)
    {
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        var buffer = new byte[2048];
        frame.CopyTo(buffer, 0);
        return r.TryAnswer(buffer, 0, frame.Length, in p, in f, Ingress, now);
    }

    private static byte[] WithTtl(byte[] frame, byte ttl)
    {
        frame[14 + 8] = ttl;
        frame[14 + 10] = frame[14 + 11] = 0;
        ushort sum = ZonLb.Engine.Checksums.InternetChecksum.IPv4Header(frame.AsSpan(14, 20));
        frame[14 + 10] = (byte)(sum >> 8);
        frame[14 + 11] = (byte)sum;
        return frame;
    }

    [Fact]
    public void An_echo_request_whose_ttl_ran_out_is_answered_with_time_exceeded()
    {
        var counters = new EngineCounters();
        var r = new IcmpResponder(counters);
        var buffer = new byte[2048];
        var frame = IcmpEcho("10.10.0.2", "10.10.0.1", 7).Ttl(1).Payload(56).Build();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out var p));
        frame.CopyTo(buffer, 0);
        int n = r.TryAnswer(buffer, 0, frame.Length, in p, TtlExceeded, Ingress, 1000);
        Assert.True(n > 0);
        var icmp = ParseIPv4(buffer[..n]).Extract<IcmpV4Packet>();
        Assert.Equal(11, (int)icmp.TypeCode >> 8); // time exceeded, code 0 (TTL)
        Assert.Equal(0, (int)icmp.TypeCode & 0xFF);
        Assert.Equal(1, counters.IcmpTimeExceededSent);
    }

    [Fact]
    public void An_icmp_error_whose_ttl_ran_out_is_not_answered()
    {
        var counters = new EngineCounters();
        var quoted = Udp("10.20.0.1", 61000, "10.20.0.2", 53).Build();
        var error = WithTtl(IcmpError("10.20.0.2", "10.20.0.1", 3, 3, quoted, quoted.Length - 14), 1);
        Assert.Equal(0, Offer(new IcmpResponder(counters), error, TtlExceeded, 1000));
        Assert.Equal(1, counters.IcmpNotAnswered);
    }

    [Fact]
    public void A_later_fragment_whose_ttl_ran_out_is_not_answered()
    {
        var counters = new EngineCounters();
        var datagram = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Ttl(1).Payload(3000).Build();
        var later = Fragments.Split(datagram, 1480, 77)[1];
        Assert.Equal(0, Offer(new IcmpResponder(counters), later, TtlExceeded, 1000));
        Assert.Equal(1, counters.IcmpNotAnswered);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("127.0.0.1")]
    [InlineData("224.0.0.5")]
    [InlineData("255.255.255.255")]
    [InlineData("240.0.0.1")]
    public void A_frame_from_an_address_no_error_may_go_to_is_not_answered(string source)
    {
        var counters = new EngineCounters();
        var frame = Udp(source, 5000, "10.10.0.1", 53).Ttl(1).Build();
        Assert.Equal(0, Offer(new IcmpResponder(counters), frame, TtlExceeded, 1000));
        Assert.Equal(1, counters.IcmpNotAnswered);
    }

    [Theory]
    [InlineData("::")]
    [InlineData("::1")]
    [InlineData("ff02::1")]
    public void An_ipv6_frame_from_an_address_no_error_may_go_to_is_not_answered(string source)
    {
        var counters = new EngineCounters();
        var frame = Udp(source, 5000, "fd00:10::1", 53).Ttl(1).Build();
        Assert.Equal(0, Offer(new IcmpResponder(counters), frame, TtlExceeded, 1000));
        Assert.Equal(1, counters.IcmpNotAnswered);
    }

    [Fact]
    public void A_frame_to_a_multicast_address_or_a_link_layer_group_is_not_answered()
    {
        var counters = new EngineCounters();
        var r = new IcmpResponder(counters);
        Assert.Equal(0, Offer(r, Udp("10.10.0.2", 5000, "239.1.1.1", 53).Ttl(1).Build(), TtlExceeded, 1000));
        var broadcastMac = Udp("10.10.0.2", 5000, "10.10.0.1", 53).Ttl(1)
            .Macs(DefaultSrcMac, System.Net.NetworkInformation.PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF")).Build();
        Assert.Equal(0, Offer(r, broadcastMac, TtlExceeded, 1000));
        Assert.Equal(2, counters.IcmpNotAnswered);
    }

    [Fact]
    public void A_ttl_flood_does_not_starve_fragmentation_needed_messages()
    {
        var counters = new EngineCounters();
        var r = new IcmpResponder(counters);
        for (int i = 0; i < 1000; i++) // from 1000 sources within one millisecond: far past the budget
            Offer(r, Udp($"10.11.{i / 250}.{i % 250 + 1}", 5000, "10.10.0.1", 53).Ttl(1).Build(), TtlExceeded, 1000);
        Assert.Equal(IcmpResponder.Burst, counters.IcmpTimeExceededSent);

        var big = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Payload(1400).DontFragment().Build();
        Assert.True(Offer(r, big, TooBig, 1000) > 0, "a client's too-big message was held back by the TTL flood");
        Assert.Equal(1, counters.IcmpTooBigSent);
    }

    [Fact]
    public void Time_exceeded_to_one_destination_is_held_to_six_then_one_a_second_while_others_get_theirs()
    {
        var counters = new EngineCounters();
        var r = new IcmpResponder(counters);
        var victim = Udp("10.10.0.99", 5000, "10.10.0.1", 53).Ttl(1).Build();
        int sent = 0;
        for (int i = 0; i < 10; i++)
            sent += Offer(r, (byte[])victim.Clone(), TtlExceeded, 1000) > 0 ? 1 : 0;
        Assert.Equal((int)IcmpResponder.PerDestinationBurst, sent);
        Assert.True(Offer(r, Udp("10.10.0.2", 5000, "10.10.0.1", 53).Ttl(1).Build(), TtlExceeded, 1000) > 0); // another sender
        Assert.Equal(0, Offer(r, (byte[])victim.Clone(), TtlExceeded, 1500));
        Assert.True(Offer(r, (byte[])victim.Clone(), TtlExceeded, 2000) > 0); // a second later, one more
    }
}
