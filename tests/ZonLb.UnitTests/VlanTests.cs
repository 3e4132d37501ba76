using PacketDotNet;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;
using ZonLb.Engine.Services;
using ZonLb.PipelineTesting;
using static ZonLb.Testing.PacketBuilder;
using static ZonLb.UnitTests.TestTopology;

namespace ZonLb.UnitTests;

/// <summary>802.1Q: routes through VLAN interfaces leave by their parent, tagged; tags are rewritten, pushed and
/// popped in the frame's buffer; PacketDotNet reads the result.</summary>
public class VlanTests
{
    private static (byte[] Buffer, int Offset, int Length) InBuffer(byte[] frame, int headroom = 256)
    {
        var buffer = new byte[headroom + frame.Length + 64];
        frame.CopyTo(buffer, headroom);
        return (buffer, headroom, frame.Length);
    }

    [Fact]
    public void Pushing_a_tag_moves_the_frame_start_back_and_keeps_the_packet()
    {
        var frame = Udp("10.20.0.2", 53, "10.10.100.2", 5000).Payload(30).Build();
        var (buffer, offset, length) = InBuffer(frame);

        Assert.True(VlanTags.Retag(buffer, ref offset, ref length, 100));

        Assert.Equal((252, frame.Length + 4), (offset, length));
        var eth = (EthernetPacket)Packet.ParsePacket(LinkLayers.Ethernet, buffer.AsSpan(offset, length).ToArray());
        var tag = eth.Extract<Ieee8021QPacket>();
        Assert.Equal(100, tag.VlanIdentifier);
        Assert.Equal(frame[0..12], buffer[offset..(offset + 12)]);
        Assert.Equal(frame[12..], buffer[(offset + 16)..(offset + length)]); // EtherType and the IP packet
        Assert.True(eth.Extract<UdpPacket>().ValidUdpChecksum);
    }

    [Fact]
    public void Popping_a_tag_moves_the_frame_start_forward()
    {
        var tagged = Udp("10.10.100.2", 5000, "10.20.0.2", 53).Vlan(100).Payload(30).Build();
        var untagged = Udp("10.10.100.2", 5000, "10.20.0.2", 53).Payload(30).Build();
        var (buffer, offset, length) = InBuffer(tagged);

        Assert.True(VlanTags.Retag(buffer, ref offset, ref length, 0));

        Assert.Equal((260, tagged.Length - 4), (offset, length));
        Assert.Equal(untagged, buffer[offset..(offset + length)]);
    }

    [Fact]
    public void Rewriting_a_tag_keeps_its_priority_bits()
    {
        var frame = Udp("10.10.100.2", 5000, "10.20.0.2", 53).Vlan(100).Build();
        frame[14] |= 0xA0; // priority 5
        var (buffer, offset, length) = InBuffer(frame);
        Assert.True(VlanTags.Retag(buffer, ref offset, ref length, 200));
        Assert.Equal((256, frame.Length), (offset, length));
        Assert.Equal(200, VlanTags.Of(buffer.AsSpan(offset, length)));
        Assert.Equal(0xA0, buffer[offset + 14] & 0xF0);
    }

    [Fact]
    public void A_push_without_headroom_is_refused()
    {
        var frame = Udp("10.20.0.2", 53, "10.10.100.2", 5000).Build();
        var (buffer, offset, length) = InBuffer(frame, headroom: 2);
        Assert.False(VlanTags.Retag(buffer, ref offset, ref length, 100));
    }

    [Fact]
    public void A_route_through_a_vlan_interface_leaves_by_its_parent_with_the_vlan_id()
    {
        var routes = new FixedRoutes().Subnet("10.10.100.0", 7).Subnet("10.20.0.0", 3)
            .Neighbor("10.10.100.2", new byte[] { 2, 0, 0, 0, 0xC, 2 }).Neighbor("10.20.0.2", new byte[] { 2, 0, 0, 0, 5, 2 });
        var p = StandalonePipeline.Create(
            new[] { new ResolvedService("web", IpAddr.Parse("10.10.100.1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 8080, IpAddr.Parse("10.20.0.1")) }) },
            new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());
        p.SetVlans(new Dictionary<int, (int, ushort)> { [7] = (2, 100) }); // ifindex 7: lbc.100

        var syn = Tcp("10.10.100.2", 40000, "10.10.100.1", 80).Vlan(100).Build();
        Assert.Equal(Verdict.Transmit, p.Process(syn, 1000, out var toBackendSent));
        Assert.Equal((3, (ushort)0), (toBackendSent.EgressIfIndex, toBackendSent.Vlan));

        ushort natPort = (ushort)(syn[18 + 20] << 8 | syn[18 + 21]);
        var synAck = Tcp("10.20.0.2", 8080, "10.20.0.1", natPort).TcpFlags(0x12).Build();
        Assert.Equal(Verdict.Transmit, p.Process(synAck, 1001, out var toClientSent));
        Assert.Equal((2, (ushort)100), (toClientSent.EgressIfIndex, toClientSent.Vlan));
        Assert.Equal(LbcMac, synAck[6..12]);
    }

    [Fact]
    public void Replies_to_a_tagged_client_leave_with_its_tag_and_frames_to_the_backend_untagged()
    {
        var routes = new FixedRoutes().Subnet("10.10.0.0", 2).Subnet("10.20.0.0", 3)
            .Neighbor("10.10.0.2", new byte[] { 2, 0, 0, 0, 0xC, 2 }).Neighbor("10.20.0.2", new byte[] { 2, 0, 0, 0, 5, 2 });
        var p = StandalonePipeline.Create(
            new[] { new ResolvedService("web", IpAddr.Parse("10.10.0.1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("10.20.0.2"), 8080, IpAddr.Parse("10.20.0.1")) }) },
            new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());

        var syn = Tcp("10.10.0.2", 40000, "10.10.0.1", 80).Vlan(100).Build();
        Assert.Equal(Verdict.Transmit, p.Process(syn, 1000, out var toBackend));
        Assert.Equal(0, toBackend.Vlan);
        ushort natPort = (ushort)(syn[18 + 20] << 8 | syn[18 + 21]);

        var synAck = Tcp("10.20.0.2", 8080, "10.20.0.1", natPort).TcpFlags(0x12).Build();
        Assert.Equal(Verdict.Transmit, p.Process(synAck, 1001, out var sent));
        Assert.Equal((2, (ushort)100), (sent.EgressIfIndex, sent.Vlan));
    }

    [Fact]
    public void Without_the_vlan_interface_known_the_route_is_not_attached()
    {
        var routes = new FixedRoutes().Subnet("10.10.100.0", 7).Neighbor("10.10.100.2", new byte[] { 2, 0, 0, 0, 0xC, 2 });
        var p = StandalonePipeline.Create(
            new[] { new ResolvedService("web", IpAddr.Parse("10.20.0.1"), IpProtocol.Tcp, 80, new[] { new ResolvedBackend(IpAddr.Parse("10.10.100.2"), 8080, IpAddr.Parse("10.10.100.1")) }) },
            new[] { (2, LbcMac), (3, LbsMac) }, routes, new EngineOptions(), new EngineCounters());
        var syn = Tcp("10.20.0.2", 40000, "10.20.0.1", 80).Build();
        Assert.Equal(Verdict.Drop, p.Process(syn, 1000, out var dropped));
        Assert.Equal(DropReason.EgressNotAttached, dropped.DropReason);
    }
}
