using PacketDotNet;
using ZonLb.Engine.Packets;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

public class IcmpErrorTests
{
    [Fact]
    public void A_frame_whose_ttl_ran_out_becomes_a_valid_time_exceeded_message_to_its_sender()
    {
        var original = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Ttl(1).Payload(100).Build();
        var buffer = new byte[256];
        original.CopyTo(buffer, 0);

        int n = IcmpErrors.BuildTimeExceeded(buffer, original.Length, IpAddr.FromV4(0x0A0A0001), default, LbcMac);

        Assert.Equal(14 + 20 + 8 + 28, n);
        var ip = ParseIPv4(buffer[..n]);
        Assert.Equal("10.10.0.1", ip.SourceAddress.ToString());
        Assert.Equal("10.10.0.2", ip.DestinationAddress.ToString());
        Assert.True(ip.ValidIPChecksum);
        var icmp = ip.Extract<IcmpV4Packet>();
        Assert.Equal(11, buffer[14 + 20]); // type: time exceeded
        Assert.Equal(0, buffer[14 + 21]);  // code: TTL exceeded in transit
        Assert.True(icmp.ValidIcmpChecksum);
        // the quote is the original IP header and the first 8 bytes of its payload
        Assert.Equal(original[14..(14 + 28)], buffer[(14 + 20 + 8)..n]);
        Assert.Equal(DefaultSrcMac.GetAddressBytes(), buffer[0..6]);
        Assert.Equal(LbcMac, buffer[6..12]);
    }

    [Fact]
    public void A_vlan_tag_is_kept_on_the_answer()
    {
        var original = Udp("10.10.0.2", 1, "10.10.0.1", 53).Ttl(1).Vlan(42).Build();
        var buffer = new byte[256];
        original.CopyTo(buffer, 0);
        int n = IcmpErrors.BuildTimeExceeded(buffer, original.Length, IpAddr.FromV4(0x0A0A0001), default, LbcMac);
        Assert.Equal(18 + 20 + 8 + 28, n);
        Assert.Equal(original[12..16], buffer[12..16]);
        Assert.Equal(11, buffer[18 + 20]);
    }

    [Fact]
    public void An_ipv6_frame_gets_no_answer_without_an_ipv6_source_address()
    {
        var original = Udp("fd00:10::2", 1, "fd00:10::1", 53).Ttl(1).Build();
        var buffer = new byte[2048];
        original.CopyTo(buffer, 0);
        Assert.Equal(0, IcmpErrors.BuildTimeExceeded(buffer, original.Length, IpAddr.FromV4(1), default, LbcMac));
    }

    [Fact]
    public void Something_that_is_not_ip_gets_no_answer()
    {
        var buffer = new byte[256];
        buffer[12] = 0x08;
        buffer[13] = 0x06;
        Assert.Equal(0, IcmpErrors.BuildTimeExceeded(buffer, 80, IpAddr.FromV4(1), IpAddr.Parse("fd00::1"), LbcMac));
    }

    [Fact]
    public void An_ipv6_frame_whose_hop_limit_ran_out_becomes_a_valid_icmpv6_time_exceeded_quoting_the_original()
    {
        var original = Tcp("fd00:10::2", 40000, "fd00:10::1", 80).Ttl(1).Payload(100).Build();
        var buffer = new byte[2048];
        original.CopyTo(buffer, 0);

        int n = IcmpErrors.BuildTimeExceeded(buffer, original.Length, default, IpAddr.Parse("fd00:10::1"), LbcMac);

        Assert.Equal(14 + 40 + 8 + (original.Length - 14), n);
        var ip = ParseIPv6(buffer[..n]);
        Assert.Equal("fd00:10::1", ip.SourceAddress.ToString());
        Assert.Equal("fd00:10::2", ip.DestinationAddress.ToString());
        Assert.Equal(58, (int)ip.Protocol);
        Assert.Equal(3, buffer[14 + 40]); // type: time exceeded
        Assert.Equal(0, buffer[14 + 41]); // code: hop limit exceeded in transit
        Assert.True(ZonLb.Testing.ReferenceChecksum.VerifiesV6(buffer.AsSpan(14, n - 14), 40, 58));
        Assert.Equal(original[14..], buffer[(14 + 48)..n]);
    }

    [Fact]
    public void An_icmpv6_error_quotes_no_more_than_fits_in_the_minimum_mtu()
    {
        var original = Udp("fd00:10::2", 1, "fd00:10::1", 53).Ttl(1).Payload(1400).Build();
        var buffer = new byte[2048];
        original.CopyTo(buffer, 0);
        int n = IcmpErrors.BuildTimeExceeded(buffer, original.Length, default, IpAddr.Parse("fd00:10::1"), LbcMac);
        Assert.Equal(14 + 1280, n);
        Assert.True(ZonLb.Testing.ReferenceChecksum.VerifiesV6(buffer.AsSpan(14, n - 14), 40, 58));
    }
}
