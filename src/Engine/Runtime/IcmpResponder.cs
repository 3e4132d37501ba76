using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Pipeline;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// The ICMP errors a worker answers dropped frames with, as a router does: time exceeded (the TTL ran out) and
/// fragmentation needed / packet too big (over the egress MTU), back out of the port the frame came in on, built
/// in the frame's own UMEM buffer. Rate-limited like a router's: a burst of <see cref="Burst"/>, then
/// <see cref="PerSecond"/> a second per worker, shared by both kinds (beyond it: counted, not sent).
/// </summary>
internal sealed class IcmpResponder
{
    public const long Burst = 20, PerSecond = 100;

    private readonly EngineCounters _counters;
    private long _tokens = Burst, _refilledAt;

    public IcmpResponder(EngineCounters counters) => _counters = counters;

    /// <summary>Whether a drop is answered (TTL expiry; too big with the MTU known).</summary>
    public static bool Answers(in Forwarding f) =>
        f.DropReason == DropReason.TtlExceeded || (f.DropReason == DropReason.FragmentationNeeded && f.Mtu > 0);

    /// <summary>Turns the dropped frame (at offset in its UMEM buffer, len bytes) into its ICMP error, within the rate;
    /// returns the error's length, or 0 when none is sent (the frame is then freed).</summary>
    public int TryAnswer(Span<byte> buffer, int offset, int len, in Forwarding f, Port ingress, long now)
    {
        long refill = (now - _refilledAt) * PerSecond / 1000;
        if (refill > 0)
        {
            _tokens = Math.Min(Burst, _tokens + refill);
            _refilledAt = now;
        }
        if (_tokens == 0)
        {
            _counters.IcmpRateLimited++;
            return 0;
        }
        bool tooBig = f.DropReason == DropReason.FragmentationNeeded;
        int n = tooBig
            ? IcmpErrors.BuildTooBig(buffer.Slice(offset), len, f.Mtu, ingress.Address, ingress.Address6, ingress.Mac)
            : IcmpErrors.BuildTimeExceeded(buffer.Slice(offset), len, ingress.Address, ingress.Address6, ingress.Mac);
        if (n == 0)
            return 0;
        _tokens--;
        if (tooBig)
            _counters.IcmpTooBigSent++;
        else
            _counters.IcmpTimeExceededSent++;
        return n;
    }
}
