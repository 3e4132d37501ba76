namespace ZonLb.Engine.Control;

// What the running engine reports through the control socket, the status line and the metrics endpoint.
// Snapshots are taken on the worker thread between batches, so each one is consistent.

public sealed record InterfaceReport(string Name, int IfIndex, string XdpMode, int Queues, bool ZeroCopy, string State);

public sealed record StatusReport(
    string Version, long UptimeSeconds, string ConfigSource, IReadOnlyList<InterfaceReport> Interfaces,
    int Services, int ActiveConnections, int ConnectionCapacity, int FramesTotal, int FramesFree,
    long ManagedHeapBytes, long WorkingSetBytes, int Gen2Collections);

public sealed record BackendReport(
    string Address, int Port, string Snat, int Weight, string State, string? HealthReason,
    long PacketsToBackend, long BytesToBackend, long PacketsToClient, long BytesToClient,
    long NewConnections, long ActiveConnections);

public sealed record ServiceReport(
    string Name, string Vip, string Protocol, int Port, bool Removed, long NewConnections, long ActiveConnections,
    IReadOnlyDictionary<string, long> Drops, IReadOnlyList<BackendReport> Backends);

public sealed record WorkerReport(int Index, int Cpu, IReadOnlyList<string> Queues, long RxPackets, long TxPackets, long HandedOff, int ActiveConnections);

public sealed record SocketReport(
    string Interface, int Queue, int Worker, ulong RxDropped, ulong RxInvalidDescs, ulong TxInvalidDescs,
    ulong RxRingFull, ulong RxFillRingEmptyDescs, ulong TxRingEmptyDescs, IReadOnlyList<string> Hints);

public sealed record InterfaceCountersReport(string Interface, IReadOnlyDictionary<string, ulong> XdpCounters);

public sealed record StatsReport(
    long RxPackets, long RxBytes, long TxPackets, long TxBytes, long ToBackend, long ToClient,
    long NewConnections, long ActiveConnections, long ExpiredConnections, long PartialChecksumsRepaired,
    long HeldForNeighbor, long HandedOff, long TxKicks, long TxKickErrors,
    IReadOnlyDictionary<string, long> Drops, IReadOnlyDictionary<string, ulong> XdpProgram,
    IReadOnlyList<WorkerReport> Workers, IReadOnlyList<SocketReport> Sockets, IReadOnlyList<InterfaceCountersReport> Interfaces,
    IReadOnlyList<ServiceReport> Services);

public sealed record ConnectionReport(
    string Service, string Protocol, string Client, string Vip, string Backend, string Snat, string State, long IdleMs);

public sealed record NextHopReport(
    string Destination, string Interface, int IfIndex, string Gateway, string? Mac, string State, long RefreshInMs);
