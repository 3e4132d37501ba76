using PacketDotNet;
using ZonLb.Engine.Packets;
using ZonLb.Testing;
using static ZonLb.Testing.PacketBuilder;

namespace ZonLb.UnitTests;

/// <summary>The reset that ends a backend's TIME_WAIT before a new connection takes its tuple over, checked with
/// PacketDotNet: a bare RST from the SYN's source to its destination, at the sequence number asked for.</summary>
public class TimeWaitResetTests
{
    private static TcpPacket Reset(byte[] syn, uint seq, out IPPacket ip) => Reset(syn, seq, out ip, out _);

    private static TcpPacket Reset(byte[] syn, uint seq, out IPPacket ip, out byte[] frame)
    {
        var into = new byte[2048];
        int n = TimeWaitReset.Build(syn, seq, into);
        Assert.True(n > 0);
        frame = into[..n];
        var eth = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, frame);
        ip = eth.Extract<IPPacket>();
        return ip.Extract<TcpPacket>();
    }

    [Fact]
    public void Over_ipv4_it_is_a_bare_rst_with_valid_checksums_between_the_syns_endpoints()
    {
        var syn = Tcp("10.20.0.1", 61234, "10.20.0.2", 8080).Seq(77).Payload(0).Build();

        var rst = Reset(syn, 5001, out var ip, out var frame);

        Assert.Equal("10.20.0.1", ip.SourceAddress.ToString());
        Assert.Equal("10.20.0.2", ip.DestinationAddress.ToString());
        Assert.True(((IPv4Packet)ip).ValidIPChecksum);
        Assert.Equal(40, ((IPv4Packet)ip).TotalLength);
        Assert.Equal((61234, 8080), (rst.SourcePort, rst.DestinationPort));
        Assert.True(rst.Reset);
        Assert.False(rst.Synchronize || rst.Acknowledgment || rst.Finished);
        Assert.Equal(5001u, rst.SequenceNumber);
        Assert.Equal(5, rst.DataOffset);                         // no options: no timestamp for PAWS to judge
        Assert.True(rst.ValidTcpChecksum);
        Assert.Equal(syn[0..12], frame[0..12]); // the SYN's MACs
    }

    [Fact]
    public void Over_ipv6_it_is_a_bare_rst_with_a_valid_checksum()
    {
        var syn = Tcp("fd00:20::1", 61234, "fd00:20::2", 8080).Build();

        var rst = Reset(syn, 0xFFFFFFFF, out var ip);

        Assert.Equal("fd00:20::1", ip.SourceAddress.ToString());
        Assert.Equal(20, ((IPv6Packet)ip).PayloadLength);
        Assert.True(rst.Reset);
        Assert.Equal(0xFFFFFFFFu, rst.SequenceNumber);
        Assert.True(rst.ValidTcpChecksum);
    }

    [Fact]
    public void A_vlan_tagged_syn_gives_a_reset_with_the_same_tag()
    {
        var syn = Tcp("10.20.0.1", 61234, "10.20.0.2", 8080).Vlan(100).Build();
        var into = new byte[2048];

        int n = TimeWaitReset.Build(syn, 9, into);

        Assert.Equal(18 + 20 + 20, n);
        Assert.Equal(syn[0..18], into[0..18]);
    }

    [Fact]
    public void A_frame_that_is_not_tcp_gives_nothing()
    {
        Assert.Equal(0, TimeWaitReset.Build(Udp("10.20.0.1", 1, "10.20.0.2", 2).Build(), 1, new byte[2048]));
    }
}
