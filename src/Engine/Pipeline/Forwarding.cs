using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// What the pipeline decided for one frame besides its <see cref="Verdict"/>: the interface it leaves by and the
/// address whose neighbour it goes to (or waits for), the VLAN tag it leaves with, and what the worker does
/// alongside: the ICMP error a drop is answered with, the reset that ends a backend's TIME_WAIT. Written whole by
/// every call, so nothing carries over from the frame before.
/// </summary>
internal struct Forwarding
{
    /// <summary>Transmit: the attached interface to send on (a VLAN's parent for a tagged route).</summary>
    public int EgressIfIndex;
    /// <summary>Transmit or hold: the address whose neighbour is the next hop (the key a held frame retries with).</summary>
    public IpAddr NextHop;
    /// <summary>The 802.1Q VLAN id to send with; 0: untagged.</summary>
    public ushort Vlan;
    /// <summary>Drop: why (already counted).</summary>
    public DropReason DropReason;
    /// <summary><see cref="DropReason.FragmentationNeeded"/>: the egress MTU the packet did not fit (for the ICMP error).</summary>
    public int Mtu;
    /// <summary>Transmit of a SYN that took over the NAT port of a connection whose backend waits in TIME_WAIT: the
    /// sequence number of the reset that ends the wait, sent to the backend just before the SYN
    /// (<see cref="Packets.TimeWaitReset"/>); null otherwise.</summary>
    public uint? TimeWaitResetSeq;
    /// <summary>Transmit or hold: the frame's new length when the pipeline shortened it (a UDP trailer trimmed); 0:
    /// as received.</summary>
    public int FrameLength;
}
