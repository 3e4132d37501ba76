using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Flows;

/// <summary>TCP connection states, after the kernel's conntrack (nf_conntrack_proto_tcp).</summary>
internal enum TcpState : byte
{
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
}

/// <summary>
/// Drives a connection's <see cref="TcpState"/> from the flags of each segment and its direction ("original" is
/// the client's side, "reply" the backend's). Liberal like conntrack's be_liberal: a flow first seen mid-stream
/// is taken as established; sequence numbers are not checked.
/// </summary>
internal static class TcpTracker
{
    public static TcpState Initial(byte flags) =>
        (flags & Wire.TcpSyn) != 0 && (flags & TcpAck) == 0 ? TcpState.SynSent : TcpState.Established;

    private const byte TcpAck = 0x10;

    /// <summary>The state after a segment with flags travelling fromClient (or from the backend).</summary>
    public static TcpState Next(TcpState s, byte flags, bool fromClient, ref bool finFromClient)
    {
        bool syn = (flags & Wire.TcpSyn) != 0, ack = (flags & TcpAck) != 0, fin = (flags & Wire.TcpFin) != 0, rst = (flags & Wire.TcpRst) != 0;
        if (rst)
            return TcpState.Close;
        switch (s)
        {
            case TcpState.SynSent:
                if (!fromClient && syn && ack)
                    return TcpState.SynRecv;
                return s;
            case TcpState.SynRecv:
                if (fromClient && ack && !syn)
                    return fin ? StartClose(fromClient, ref finFromClient) : TcpState.Established;
                return s;
            case TcpState.Established:
                return fin ? StartClose(fromClient, ref finFromClient) : s;
            case TcpState.FinWait:
                // the side that sent the first FIN waits: the other side's FIN closes it, its ACK half-closes it
                if (fromClient != finFromClient)
                    return fin ? TcpState.LastAck : (ack ? TcpState.CloseWait : s);
                return s;
            case TcpState.CloseWait:
                return fromClient != finFromClient && fin ? TcpState.LastAck : s;
            case TcpState.LastAck:
                return fromClient == finFromClient && ack ? TcpState.TimeWait : s;
            case TcpState.TimeWait:
            case TcpState.Close:
                // a new SYN from the client reuses the tuple: a new connection on the same backend and NAT port
                return fromClient && syn && !ack ? TcpState.SynSent : s;
            default:
                return s;
        }
    }

    private static TcpState StartClose(bool fromClient, ref bool finFromClient)
    {
        finFromClient = fromClient;
        return TcpState.FinWait;
    }
}
