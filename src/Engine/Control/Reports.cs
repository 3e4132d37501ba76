namespace ZonLb.Engine.Control;

// What the running engine reports through the control socket, the status line and the metrics endpoint.
// Snapshots are taken on the worker thread between batches, so each one is consistent.

/// <summary>An attached interface.</summary>
/// <param name="Name">Interface name.</param>
/// <param name="IfIndex">Kernel interface index.</param>
/// <param name="XdpMode">How the XDP program is attached: native or generic.</param>
/// <param name="Queues">AF_XDP sockets, one per RX queue.</param>
/// <param name="ZeroCopy">Whether the sockets run zero-copy (veth: never).</param>
/// <param name="State">up, down or deleted.</param>
public sealed record InterfaceReport(string Name, int IfIndex, string XdpMode, int Queues, bool ZeroCopy, string State)
{
    /// <summary>Attached through libxdp's dispatcher (other XDP programs may share the interface), or alone.</summary>
    public bool Dispatcher { get; init; }
}

/// <summary>The engine at a glance.</summary>
/// <param name="Version">The engine's assembly version.</param>
/// <param name="UptimeSeconds">Seconds since start.</param>
/// <param name="ConfigSource">Where the configuration came from (a path, or "code").</param>
/// <param name="Interfaces">The attached interfaces.</param>
/// <param name="Services">Services taking new flows.</param>
/// <param name="ActiveConnections">Connections in the tables.</param>
/// <param name="ConnectionCapacity">Connections the tables can hold.</param>
/// <param name="FramesTotal">UMEM frames in all.</param>
/// <param name="FramesFree">UMEM frames in the pool.</param>
/// <param name="ManagedHeapBytes">The process's managed heap.</param>
/// <param name="WorkingSetBytes">The process's working set.</param>
/// <param name="Gen2Collections">Full garbage collections so far.</param>
public sealed record StatusReport(
    string Version, long UptimeSeconds, string ConfigSource, IReadOnlyList<InterfaceReport> Interfaces,
    int Services, int ActiveConnections, int ConnectionCapacity, int FramesTotal, int FramesFree,
    long ManagedHeapBytes, long WorkingSetBytes, int Gen2Collections)
{
    /// <summary>Garbage collections of the first and second generations so far (each stops the workers).</summary>
    public int Gen0Collections { get; init; }
    /// <summary>See <see cref="Gen0Collections"/>.</summary>
    public int Gen1Collections { get; init; }
    /// <summary>Time the garbage collector has held every thread, the workers' included, since start.</summary>
    public double GcPauseTotalMs { get; init; }
    /// <summary>The longest of the last collections' pauses (the runtime keeps a few), in milliseconds.</summary>
    public double GcPauseMaxRecentMs { get; init; }
}

/// <summary>One backend of a service, with its traffic.</summary>
/// <param name="Address">The backend's address.</param>
/// <param name="Port">Its port (0 for ICMP echo).</param>
/// <param name="Snat">The source address the engine uses toward it.</param>
/// <param name="Weight">Its Maglev weight.</param>
/// <param name="State">up, down, disabled, removed or weight-0.</param>
/// <param name="HealthReason">The last health check's result, when checked.</param>
/// <param name="PacketsToBackend">Frames sent to it.</param>
/// <param name="BytesToBackend">Bytes sent to it.</param>
/// <param name="PacketsToClient">Frames from it sent back to clients.</param>
/// <param name="BytesToClient">Bytes from it sent back to clients.</param>
/// <param name="NewConnections">Connections assigned to it.</param>
/// <param name="ActiveConnections">Its connections in the tables now.</param>
public sealed record BackendReport(
    string Address, int Port, string Snat, int Weight, string State, string? HealthReason,
    long PacketsToBackend, long BytesToBackend, long PacketsToClient, long BytesToClient,
    long NewConnections, long ActiveConnections);

/// <summary>One service with its backends.</summary>
/// <param name="Name">The service's name.</param>
/// <param name="Vip">Its VIP.</param>
/// <param name="Protocol">tcp, udp or icmp.</param>
/// <param name="Port">Its port (0 for ICMP echo).</param>
/// <param name="Removed">Removed by a reload; its connections drain.</param>
/// <param name="NewConnections">Connections created.</param>
/// <param name="ActiveConnections">Its connections in the tables now.</param>
/// <param name="Drops">Frames of this service dropped, by reason label.</param>
/// <param name="Backends">Its backends.</param>
public sealed record ServiceReport(
    string Name, string Vip, string Protocol, int Port, bool Removed, long NewConnections, long ActiveConnections,
    IReadOnlyDictionary<string, long> Drops, IReadOnlyList<BackendReport> Backends);

/// <summary>One worker thread.</summary>
/// <param name="Index">Worker number.</param>
/// <param name="Cpu">The CPU it is pinned to, or -1.</param>
/// <param name="Queues">The "interface:queue" sockets it owns.</param>
/// <param name="RxPackets">Frames it received.</param>
/// <param name="TxPackets">Frames it sent.</param>
/// <param name="HandedOff">Frames it passed to the worker owning their connection.</param>
/// <param name="ActiveConnections">Connections in its table.</param>
public sealed record WorkerReport(int Index, int Cpu, IReadOnlyList<string> Queues, long RxPackets, long TxPackets, long HandedOff, int ActiveConnections);

/// <summary>One AF_XDP socket's kernel counters (XDP_STATISTICS).</summary>
/// <param name="Interface">Its interface.</param>
/// <param name="Queue">Its queue.</param>
/// <param name="Worker">The worker that owns it.</param>
/// <param name="RxDropped">Frames the kernel dropped for this socket (no room in the UMEM frame, ...).</param>
/// <param name="RxInvalidDescs">Invalid RX descriptors.</param>
/// <param name="TxInvalidDescs">Invalid TX descriptors.</param>
/// <param name="RxRingFull">Frames dropped because the RX ring was full.</param>
/// <param name="RxFillRingEmptyDescs">Times the fill ring was empty when a frame arrived.</param>
/// <param name="TxRingEmptyDescs">Times the TX ring was found empty.</param>
/// <param name="Hints">The likely cause of each non-zero counter.</param>
public sealed record SocketReport(
    string Interface, int Queue, int Worker, ulong RxDropped, ulong RxInvalidDescs, ulong TxInvalidDescs,
    ulong RxRingFull, ulong RxFillRingEmptyDescs, ulong TxRingEmptyDescs, IReadOnlyList<string> Hints);

/// <summary>An interface's driver counters about XDP and drops (ethtool -S).</summary>
/// <param name="Interface">The interface.</param>
/// <param name="XdpCounters">Counter name to value.</param>
public sealed record InterfaceCountersReport(string Interface, IReadOnlyDictionary<string, ulong> XdpCounters);

/// <summary>Every counter of the engine.</summary>
/// <param name="RxPackets">Frames received from the sockets.</param>
/// <param name="RxBytes">Bytes received.</param>
/// <param name="TxPackets">Frames sent.</param>
/// <param name="TxBytes">Bytes sent.</param>
/// <param name="ToBackend">Frames translated toward backends.</param>
/// <param name="ToClient">Frames translated back toward clients.</param>
/// <param name="NewConnections">Connections created.</param>
/// <param name="ActiveConnections">Connections in the tables now.</param>
/// <param name="ExpiredConnections">Connections removed after their idle timeout.</param>
/// <param name="PartialChecksumsRepaired">CHECKSUM_PARTIAL checksums completed.</param>
/// <param name="HeldForNeighbor">Frames held while a neighbour resolved.</param>
/// <param name="HandedOff">Frames passed between workers.</param>
/// <param name="TxKicks">sendto() kicks of TX rings.</param>
/// <param name="TxKickErrors">Kicks that failed.</param>
/// <param name="Drops">Frames dropped, by reason label.</param>
/// <param name="XdpProgram">The XDP program's counters (seen, redirected, passed, no_socket).</param>
/// <param name="Workers">Per worker.</param>
/// <param name="Sockets">Per socket.</param>
/// <param name="Interfaces">Per interface.</param>
/// <param name="Services">Per service and backend.</param>
public sealed record StatsReport(
    long RxPackets, long RxBytes, long TxPackets, long TxBytes, long ToBackend, long ToClient,
    long NewConnections, long ActiveConnections, long ExpiredConnections, long PartialChecksumsRepaired,
    long HeldForNeighbor, long HandedOff, long TxKicks, long TxKickErrors,
    IReadOnlyDictionary<string, long> Drops, IReadOnlyDictionary<string, ulong> XdpProgram,
    IReadOnlyList<WorkerReport> Workers, IReadOnlyList<SocketReport> Sockets, IReadOnlyList<InterfaceCountersReport> Interfaces,
    IReadOnlyList<ServiceReport> Services)
{
    /// <summary>Frames received as chains of several UMEM frames (engine.multi_buffer), counted in RxPackets too.</summary>
    public long RxMultiBuffer { get; init; }
    /// <summary>Unassured entries evicted to make room for new flows (a full table or NAT port range; table_full = "early-drop").</summary>
    public long EarlyDrops { get; init; }
    /// <summary>NAT ports taken over from closed TCP connections (TIME_WAIT, CLOSE) by new connections.</summary>
    public long NatPortsReused { get; init; }
    /// <summary>Resets sent to end a backend's TIME_WAIT on a NAT port a new connection took over.</summary>
    public long TimeWaitResets { get; init; }
}

/// <summary>One tracked connection.</summary>
/// <param name="Service">Its service.</param>
/// <param name="Protocol">tcp, udp or icmp.</param>
/// <param name="Client">"address:port" of the client.</param>
/// <param name="Vip">"address:port" it reached.</param>
/// <param name="Backend">"address:port" of its backend.</param>
/// <param name="Snat">"address:port" the backend sees as the source.</param>
/// <param name="State">TCP state, or REPLIED / UNREPLIED.</param>
/// <param name="IdleMs">Milliseconds since its last packet.</param>
public sealed record ConnectionReport(
    string Service, string Protocol, string Client, string Vip, string Backend, string Snat, string State, long IdleMs);

/// <summary>One cached next hop.</summary>
/// <param name="Destination">The destination address.</param>
/// <param name="Interface">The egress interface.</param>
/// <param name="IfIndex">Its index.</param>
/// <param name="Gateway">The next hop's address (the destination itself when on-link).</param>
/// <param name="Mac">The neighbour's MAC, when resolved.</param>
/// <param name="State">resolved, pending or noroute.</param>
/// <param name="RefreshInMs">Milliseconds until the kernel is asked again.</param>
public sealed record NextHopReport(
    string Destination, string Interface, int IfIndex, string Gateway, string? Mac, string State, long RefreshInMs);
