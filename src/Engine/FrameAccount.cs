namespace ZonLb.Engine;

/// <summary>Where every UMEM frame is: in the pool, lent to the kernel (fill ring), received and not yet
/// processed (RX ring), waiting to be sent (TX ring), sent and not yet completed (completion ring), or held (for
/// a neighbour, or in a hand-off ring between workers). <see cref="Unaccounted"/> is what none of these explains: a leak, when the data path is idle.</summary>
public readonly record struct FrameAccount(int Total, int Free, long Fill, long Rx, long Tx, long Completion, long Held)
{
    /// <summary>Frames none of the places explains.</summary>
    public long Unaccounted => Total - Free - Fill - Rx - Tx - Completion - Held;

    /// <summary>"frames_total=... frames_unaccounted=N".</summary>
    public override string ToString() =>
        $"frames_total={Total} frames_free={Free} frames_fill={Fill} frames_rx={Rx} frames_tx={Tx} " +
        $"frames_completion={Completion} frames_held={Held} frames_unaccounted={Unaccounted}";
}
