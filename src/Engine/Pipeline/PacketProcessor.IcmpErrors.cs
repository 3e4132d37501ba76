using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>ICMP errors about packets we translated.</summary>
internal sealed partial class PacketProcessor
{
    /// <summary>
    /// An ICMP error about a packet we translated (a backend's port unreachable, a router's fragmentation
    /// needed or time exceeded): found through the quoted packet's tuple, and translated back like a packet
    /// of the connection, the quoted packet included, so the sender of the original sees a correct error.
    /// </summary>
    private Verdict TranslateIcmpError(Span<byte> frame, in ParsedPacket p, long now, ref Forwarding f)
    {
        // Checked before anything: the message is recomputed after translation, which would turn a corrupt one valid.
        if (!NatRewriter.IcmpChecksumIsValid(frame.Slice(p.L4Offset, p.L4Length), p.IsV6, p.SrcIp, p.DstIp))
            return Drop(DropReason.BadIcmpChecksum, ref f);
        // The quoted packet is one we sent: toward a backend (from SNAT:nat port), or toward a client (from
        // VIP:port). Its reverse is the key of the connection from the other side.
        var reverse = new FlowKey(p.InnerDst, p.InnerSrc, p.InnerDstPort, p.InnerSrcPort, p.InnerProtocol);
        bool aboutToBackend;
        if (_connections.TryGetByBackend(reverse, out int index))
            aboutToBackend = true;
        else if (_connections.TryGetByClient(reverse, out index))
            aboutToBackend = false;
        else
            return Drop(DropReason.NoConnection, ref f);
        ref var c = ref _connections[index];
        IpAddr outerDst, innerSrc, innerDst;
        ushort innerSport, innerDport;
        IpAddr outerSrc = p.SrcIp;
        if (aboutToBackend)
        {
            // to the client, as if about the packet it sent to the VIP
            outerDst = c.ClientIp;
            if (outerSrc == c.BackendIp)
                outerSrc = c.VipIp;
            innerSrc = c.ClientIp; innerSport = c.ClientPort; innerDst = c.VipIp; innerDport = c.VipPort;
        }
        else
        {
            // to the backend, as if about the packet it sent to the SNAT address
            outerDst = c.BackendIp;
            if (outerSrc == c.ClientIp)
                outerSrc = c.SnatIp;
            innerSrc = c.BackendIp; innerSport = c.BackendPort; innerDst = c.SnatIp; innerDport = c.NatPort;
        }
        if (p.InnerProtocol == IpProtocol.Icmp)
            innerSport = innerDport = aboutToBackend ? c.ClientPort : c.NatPort; // the echo id, as the other side knows it

        var inner = frame.Slice(p.InnerL3Offset, p.InnerL4Offset - p.InnerL3Offset + p.InnerL4Length);
        NatRewriter.TranslateQuoted(inner, p.InnerL4Offset - p.InnerL3Offset, p.IsV6, p.InnerProtocol,
            p.InnerSrc, p.InnerDst, p.InnerSrcPort, p.InnerDstPort, innerSrc, innerDst, innerSport, innerDport);
        NatRewriter.RecomputeIcmpChecksum(frame.Slice(p.L4Offset, p.L4Length), p.IsV6, outerSrc, outerDst);
        RewriteIpHeader(frame, in p, outerSrc, outerDst);
        Counters.IcmpErrorsTranslated++;
        c.LastSeen = now;
        return RouteFor(frame, ref c, toBackend: !aboutToBackend, outerDst, now, ref f);
    }
}
