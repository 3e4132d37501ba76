namespace ZonLb.Engine.Pipeline;

/// <summary>What the worker does with a frame after the pipeline ran.</summary>
internal enum Verdict : byte
{
    /// <summary>Return the frame to the pool; the reason was counted.</summary>
    Drop,
    /// <summary>Send the rewritten frame out of the egress interface.</summary>
    Transmit,
    /// <summary>Translated, but the next hop's MAC is not known yet: keep the frame and retry.</summary>
    Hold,
    /// <summary>A later fragment whose first fragment has not been seen: keep it (untouched) and run it again.</summary>
    HoldFragment,
}
