namespace ZonLb.Engine.Counters;

/// <summary>
/// Why the engine dropped a frame. The numbers leave the process (counters, logs) and are frozen by a test:
/// add new reasons at the end, never renumber.
/// </summary>
public enum DropReason
{
    /// <summary>Not dropped.</summary>
    None = 0,
    /// <summary>The frame ends inside a header.</summary>
    Truncated = 1,
    /// <summary>A header is inconsistent (lengths, version, header order).</summary>
    Malformed = 2,
    /// <summary>Neither IPv4 nor IPv6 (the XDP program passes those to the kernel; seen only if steered by hand).</summary>
    NotIp = 3,
    /// <summary>The IPv4 header checksum is wrong.</summary>
    BadIpChecksum = 4,
    /// <summary>A later IP fragment whose first fragment did not arrive within 1 s (or too many waited).</summary>
    Fragment = 5,
    /// <summary>Neither TCP, UDP nor ICMP/ICMPv6.</summary>
    UnsupportedProtocol = 6,
    /// <summary>ICMP other than echo request or reply.</summary>
    IcmpNotEcho = 7,
    /// <summary>No service at the destination (address, protocol, port).</summary>
    NoService = 8,
    /// <summary>A reply to a NAT address with no connection behind it.</summary>
    NoConnection = 9,
    /// <summary>TTL or hop limit ran out here (answered with ICMP time exceeded).</summary>
    TtlExceeded = 10,
    /// <summary>No NAT port left for a new flow.</summary>
    NatPortsExhausted = 11,
    /// <summary>No room for a new flow in the connection table.</summary>
    ConnectionTableFull = 12,
    /// <summary>The kernel has no route to the destination.</summary>
    NoRoute = 13,
    /// <summary>The route leaves through an interface the engine is not attached to.</summary>
    EgressNotAttached = 14,
    /// <summary>The next hop's MAC did not resolve within neighbor_wait_ms.</summary>
    NeighborUnresolved = 15,
    /// <summary>Too many frames already wait for neighbours.</summary>
    HoldQueueFull = 16,
    /// <summary>The egress socket's TX ring was full.</summary>
    TxRingFull = 17,
    /// <summary>No free UMEM frame.</summary>
    FramePoolEmpty = 18,
    /// <summary>Every backend of the service is out.</summary>
    NoBackend = 19,
    /// <summary>The ring to the worker that owns the connection was full.</summary>
    HandoffFull = 20,
    /// <summary>Larger than the egress MTU with DF set, or IPv6: answered with ICMP fragmentation needed / packet too big.</summary>
    FragmentationNeeded = 21,
    /// <summary>Larger than the egress MTU without DF: the engine does not fragment.</summary>
    MtuExceeded = 22,
    /// <summary>An 802.1Q tag the receiving interface's configuration does not list (vlans).</summary>
    VlanNotConfigured = 23,
    /// <summary>An ICMP error about one of our connections whose checksum is wrong: not translated (a translation
    /// would make it look valid).</summary>
    BadIcmpChecksum = 24,
}

/// <summary>The names operators see for drop reasons.</summary>
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
        DropReason.FragmentationNeeded => "fragmentation_needed",
        DropReason.MtuExceeded => "mtu_exceeded",
        DropReason.VlanNotConfigured => "vlan_not_configured",
        DropReason.BadIcmpChecksum => "bad_icmp_checksum",
        _ => "reason_" + ((int)r).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>How many reasons there are (None included).</summary>
    public const int Count = 25;
}
