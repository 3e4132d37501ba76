using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// The ICMP errors a worker answers dropped frames with, as a router does: time exceeded (the TTL ran out) and
/// fragmentation needed / packet too big (over the egress MTU), back out of the port the frame came in on, built in
/// the frame's own UMEM buffer. Never about an ICMP error, a fragment other than the first, or a packet from an
/// unspecified, loopback, multicast or broadcast source, nor about one sent to a multicast or broadcast destination
/// (RFC 1812 4.3.2.7, RFC 4443 2.4 e: packet too big may answer a multicast destination). Rate-limited per kind, so a
/// flood of one (TTL=1) cannot starve the other (path MTU discovery): a burst of <see cref="Burst"/>, then
/// <see cref="PerSecond"/> a second each; and time exceeded per destination as Linux does (6, then 1 a second), so
/// spoofed sources cannot aim them at one victim. What the rules or the limits hold back is counted.
/// </summary>
internal sealed class IcmpResponder
{
    public const long Burst = 20, PerSecond = 100;
    public const long PerDestinationBurst = 6, PerDestinationPerSecond = 1;
    private const int Destinations = 256;

    private readonly EngineCounters _counters;
    private TokenBucket _timeExceeded = TokenBucket.Full(Burst), _tooBig = TokenBucket.Full(Burst);
    private readonly (IpAddr Destination, TokenBucket Bucket)[] _perDestination = new (IpAddr, TokenBucket)[Destinations];

    public IcmpResponder(EngineCounters counters) => _counters = counters;

    /// <summary>Whether a drop is of a kind answered (TTL expiry; too big with the MTU known).</summary>
    public static bool Answers(in Forwarding f) =>
        f.DropReason == DropReason.TtlExceeded || (f.DropReason == DropReason.FragmentationNeeded && f.Mtu > 0);

    /// <summary>Whether the rules allow an error about this frame (p: the frame as it arrived).</summary>
    public static bool MayAnswer(ReadOnlySpan<byte> frame, in ParsedPacket p, bool tooBig)
    {
        if (p.IsIcmpError || p.IsLaterFragment || (frame[0] & 1) != 0) // an error; a later fragment; to a link-layer group
            return false;
        if (p.Protocol == IpProtocol.Icmp && p.IcmpType is not (Wire.IcmpEchoRequest or Wire.IcmpEchoReply))
            return false; // any other ICMP that reaches here is no echo: treat it as an error
        return p.IsV6
            ? !IsV6Bad(p.SrcIp) && (tooBig || (p.DstIp.Hi >> 56) != 0xFF)
            : !IsV4BadSource(p.SrcIp.V4) && !IsV4Group(p.DstIp.V4);
    }

    private static bool IsV4BadSource(uint a) => a == 0 || (a >> 24) == 127 || IsV4Group(a);

    /// <summary>Multicast (224/4), reserved (240/4) and the limited broadcast.</summary>
    private static bool IsV4Group(uint a) => (a >> 28) >= 0xE;

    /// <summary>Unspecified, loopback or multicast.</summary>
    private static bool IsV6Bad(in IpAddr a) => (a.Hi == 0 && (a.Lo == 0 || a.Lo == 1)) || (a.Hi >> 56) == 0xFF;

    /// <summary>Turns the dropped frame (at offset in its UMEM buffer, len bytes; p as it arrived) into its ICMP error,
    /// within the rules and the rates; returns the error's length, or 0 when none is sent (the frame is then freed).</summary>
    public int TryAnswer(Span<byte> buffer, int offset, int len, in ParsedPacket p, in Forwarding f, Port ingress, long now)
    {
        bool tooBig = f.DropReason == DropReason.FragmentationNeeded;
        if (!MayAnswer(buffer.Slice(offset, len), in p, tooBig))
        {
            _counters.IcmpNotAnswered++;
            return 0;
        }
        ref var bucket = ref tooBig ? ref _tooBig : ref _timeExceeded;
        if (!bucket.TryTake(now, Burst, PerSecond) || (!tooBig && !PerDestination(p.SrcIp, now)))
        {
            _counters.IcmpRateLimited++;
            return 0;
        }
        int n = tooBig
            ? IcmpErrors.BuildTooBig(buffer.Slice(offset), len, f.Mtu, ingress.Address, ingress.Address6, ingress.Mac)
            : IcmpErrors.BuildTimeExceeded(buffer.Slice(offset), len, ingress.Address, ingress.Address6, ingress.Mac);
        if (n == 0)
            return 0;
        if (tooBig)
            _counters.IcmpTooBigSent++;
        else
            _counters.IcmpTimeExceededSent++;
        return n;
    }

    /// <summary>The destination's own bucket (a slot its address hashes to; a new address takes the slot whole).</summary>
    private bool PerDestination(in IpAddr destination, long now)
    {
        ref var slot = ref _perDestination[(int)((uint)destination.GetHashCode() % Destinations)];
        if (slot.Destination != destination)
            slot = (destination, TokenBucket.Full(PerDestinationBurst));
        return slot.Bucket.TryTake(now, PerDestinationBurst, PerDestinationPerSecond);
    }

    /// <summary>A token bucket on the data path's millisecond clock.</summary>
    private struct TokenBucket
    {
        private long _tokens, _refilledAt;

        public static TokenBucket Full(long burst) => new() { _tokens = burst, _refilledAt = long.MinValue };

        public bool TryTake(long now, long burst, long perSecond)
        {
            if (_refilledAt == long.MinValue)
                _refilledAt = now;
            long refill = (now - _refilledAt) * perSecond / 1000;
            if (refill > 0)
            {
                _tokens = Math.Min(burst, _tokens + refill);
                _refilledAt += refill * 1000 / perSecond;
            }
            if (_tokens == 0)
                return false;
            _tokens--;
            return true;
        }
    }
}
