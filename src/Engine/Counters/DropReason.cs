namespace ZonLb.Engine.Counters;

/// <summary>
/// Why the engine dropped a frame. The numbers leave the process (counters, logs) and are frozen by a test:
/// add new reasons at the end, never renumber.
/// </summary>
public enum DropReason
{
    None = 0,
    Truncated = 1,
    Malformed = 2,
    /// <summary>Neither IPv4 nor IPv6 (the XDP program passes those to the kernel; seen only if steered by hand).</summary>
    NotIp = 3,
    BadIpChecksum = 4,
    Fragment = 5,
    UnsupportedProtocol = 6,
    IcmpNotEcho = 7,
    NoService = 8,
    NoConnection = 9,
    TtlExceeded = 10,
    NatPortsExhausted = 11,
    ConnectionTableFull = 12,
    NoRoute = 13,
    EgressNotAttached = 14,
    NeighborUnresolved = 15,
    HoldQueueFull = 16,
    TxRingFull = 17,
    FramePoolEmpty = 18,
    NoBackend = 19,
    HandoffFull = 20,
}

public static class DropReasonNames
{
    /// <summary>snake_case name used in status lines and metrics labels.</summary>
    public static string ToLabel(this DropReason r) => r switch
    {
        DropReason.None => "none",
        DropReason.Truncated => "truncated",
        DropReason.Malformed => "malformed",
        DropReason.NotIp => "not_ip",
        DropReason.BadIpChecksum => "bad_ip_checksum",
        DropReason.Fragment => "fragment",
        DropReason.UnsupportedProtocol => "unsupported_protocol",
        DropReason.IcmpNotEcho => "icmp_not_echo",
        DropReason.NoService => "no_service",
        DropReason.NoConnection => "no_connection",
        DropReason.TtlExceeded => "ttl_exceeded",
        DropReason.NatPortsExhausted => "nat_ports_exhausted",
        DropReason.ConnectionTableFull => "connection_table_full",
        DropReason.NoRoute => "no_route",
        DropReason.EgressNotAttached => "egress_not_attached",
        DropReason.NeighborUnresolved => "neighbor_unresolved",
        DropReason.HoldQueueFull => "hold_queue_full",
        DropReason.TxRingFull => "tx_ring_full",
        DropReason.FramePoolEmpty => "frame_pool_empty",
        DropReason.NoBackend => "no_backend",
        DropReason.HandoffFull => "handoff_full",
        _ => "reason_" + ((int)r).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public const int Count = 21;
}
