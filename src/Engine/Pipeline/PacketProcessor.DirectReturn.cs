using System.Buffers.Binary;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;

namespace ZonLb.Engine.Pipeline;

/// <summary>Direct server return (a service with <c>dsr</c>).</summary>
internal sealed partial class PacketProcessor
{
    /// <summary>
    /// Direct server return: the frame goes to its connection's backend as it came, but for the MACs (and a
    /// CHECKSUM_PARTIAL checksum completed, or the backend would drop it); TTL and addresses are the client's.
    /// The backend, holding the VIP, answers the client directly, so only the client's side is ever seen:
    /// TCP connections are tracked from its flags alone.
    /// </summary>
    private Verdict ForwardDirect(Span<byte> frame, in ParsedPacket p, ref Connection c, long now, ref Forwarding f)
    {
        if (p.Protocol == IpProtocol.Tcp)
        {
            bool syn = (p.TcpFlags & Wire.TcpSyn) != 0;
            c.TcpState = (p.TcpFlags & Wire.TcpRst) != 0 ? TcpState.Close
                : (p.TcpFlags & Wire.TcpFin) != 0 ? TcpState.TimeWait
                : syn ? TcpState.SynSent : TcpState.Established;
        }
        Counters.ToBackend++;
        f.NextHop = c.BackendIp;
        var state = _egress.Lookup(c.BackendIp, now, ref c.HopToBackend, out var hop, out int port, out f.Vlan, out var reason);
        f.EgressIfIndex = hop.IfIndex;
        if (reason != DropReason.None)
            return Drop(reason, ref f);
        if (port >= 0 && p.IpTotalLength > _egress.MtuOf(port))
            return TooBig(frame, in p, port, ref f);
        if (HasPartialChecksum(frame, in p)) // TCP or UDP only
        {
            var l4 = frame.Slice(p.L4Offset, p.L4InFrame);
            int csOff = p.Protocol == IpProtocol.Tcp ? Wire.TcpChecksum : Wire.UdpChecksum;
            ushort sum = NatRewriter.CompleteChecksum(l4, p.L4Length, p.BeyondSum, csOff, p.SrcIp, p.DstIp, (byte)p.Protocol);
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), p.Protocol == IpProtocol.Udp && sum == 0 ? (ushort)0xFFFF : sum);
            Counters.PartialChecksumsRepaired++;
        }
        if (state == NextHopState.Pending)
            return Verdict.Hold;
        _egress.WriteMacs(frame, in hop, port);
        return Verdict.Transmit;
    }
}
