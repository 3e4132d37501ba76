using ZonLb.Engine.Balancing;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>A backend with the source addresses the engine uses toward it, and its Maglev weight.</summary>
internal readonly record struct ResolvedBackend
{
    /// <summary>A backend reached from one SNAT address (default: none, direct server return).</summary>
    public ResolvedBackend(IpAddr ip, ushort port, IpAddr snatIp, int weight = 1)
        : this(ip, port, snatIp == default ? SnatAddresses.None : new SnatAddresses(snatIp), weight)
    {
    }

    private ResolvedBackend(IpAddr ip, ushort port, SnatAddresses snat, int weight)
    {
        Ip = ip;
        Port = port;
        Snat = snat;
        Weight = weight;
    }

    /// <summary>A backend reached from several SNAT addresses, each with its own NAT port range.</summary>
    public static ResolvedBackend WithSnat(IpAddr ip, ushort port, SnatAddresses snat, int weight = 1) => new(ip, port, snat, weight);

    public IpAddr Ip { get; init; }
    public ushort Port { get; init; }
    public SnatAddresses Snat { get; init; }
    public int Weight { get; init; }

    /// <summary>The first SNAT address (default under direct server return).</summary>
    public IpAddr SnatIp => Snat.First;

    /// <summary>The identity Maglev hashes: the same in every instance with the same configuration.</summary>
    public string Identity => $"{Ip}:{Port}";
}

/// <summary>(VIP, protocol, port) of a service; port 0 for ICMP echo.</summary>
internal readonly record struct ServiceKey(IpAddr Vip, IpProtocol Protocol, ushort Port);

/// <summary>
/// A backend of a running service: what it is, whether it takes new flows, and its counters (written by the
/// worker thread only). Slots are never removed from a service, only marked removed, so that connections can
/// keep referring to their backend by index.
/// </summary>
internal sealed class BackendSlot
{
    public BackendSlot(ResolvedBackend info, int workers = 1)
    {
        Info = info;
        PerWorker = FlowCounters.For(workers);
    }

    public ResolvedBackend Info { get; internal set; }
    /// <summary>Taken out by an operator (backend disable).</summary>
    public bool Disabled { get; internal set; }
    /// <summary>Taken out by the health checker.</summary>
    public bool Unhealthy { get; internal set; }
    /// <summary>Removed from the configuration; kept while its connections drain.</summary>
    public bool Removed { get; internal set; }

    public bool TakesNewFlows => !Disabled && !Unhealthy && !Removed && Info.Weight > 0;

    public string State => Removed ? "removed" : Disabled ? "disabled" : Unhealthy ? "down" : Info.Weight == 0 ? "weight-0" : "up";

    /// <summary>Counters, one block per worker (each written by its worker only); <see cref="Total"/> sums them.</summary>
    public FlowCounters[] PerWorker { get; }

    public FlowCounters Total => FlowCounters.Sum(PerWorker);
}

/// <summary>Traffic counters of a service or a backend, for one worker.</summary>
internal sealed class FlowCounters
{
    public long PacketsToBackend, BytesToBackend, PacketsToClient, BytesToClient, NewConnections, ActiveConnections;
    /// <summary>Per-worker counters only: their index in the list of <see cref="IdOwner"/>, the worker's
    /// processor that gave it at their first connection (see <see cref="Flows.Connection.CountersId"/>).</summary>
    public int Id;
    public object? IdOwner;
    public readonly long[] Drops = new long[DropReasonNames.Count];

    public static FlowCounters[] For(int workers) => Enumerable.Range(0, workers).Select(_ => new FlowCounters()).ToArray();

    public static FlowCounters Sum(FlowCounters[] all)
    {
        var t = new FlowCounters();
        foreach (var c in all)
        {
            t.PacketsToBackend += c.PacketsToBackend;
            t.BytesToBackend += c.BytesToBackend;
            t.PacketsToClient += c.PacketsToClient;
            t.BytesToClient += c.BytesToClient;
            t.NewConnections += c.NewConnections;
            t.ActiveConnections += c.ActiveConnections;
            for (int i = 0; i < t.Drops.Length; i++)
                t.Drops[i] += c.Drops[i];
        }
        return t;
    }
}

/// <summary>
/// A service with its addresses as numbers, its backends' SNAT addresses decided, per-backend state and counters,
/// and the Maglev table that assigns new flows. Changes rebuild the table; connections already assigned keep
/// their backend. Mutated only on the worker thread.
/// </summary>
internal sealed class ResolvedService
{
    private readonly int _tableSize;

    public ResolvedService(string name, IpAddr vip, IpProtocol protocol, ushort port, ResolvedBackend[] backends,
        int maglevTableSize = MaglevTable.DefaultSize, int workers = 1, bool dsr = false)
    {
        Dsr = dsr;
        Name = name;
        Vip = vip;
        Protocol = protocol;
        Port = port;
        _tableSize = maglevTableSize;
        Workers = workers;
        PerWorker = FlowCounters.For(workers);
        foreach (var b in backends)
            Backends.Add(new BackendSlot(b, workers));
        Table = Build();
    }

    /// <summary>How many workers write counters (one block each).</summary>
    public int Workers { get; }

    public FlowCounters[] PerWorker { get; }

    public FlowCounters Total => FlowCounters.Sum(PerWorker);

    public string Name { get; }
    public IpAddr Vip { get; }
    /// <summary>Direct server return: frames go to the backend unchanged but for the MACs; no NAT, no replies.</summary>
    public bool Dsr { get; }
    public IpProtocol Protocol { get; }
    public ushort Port { get; }
    public List<BackendSlot> Backends { get; } = new();
    /// <summary>Removed from the configuration: no new flows; existing connections drain.</summary>
    public bool Removed { get; internal set; }

    /// <summary>The table new flows are assigned by; replaced whole when a backend goes out or comes back.</summary>
    public MaglevTable Table { get; private set; }

    public ServiceKey Key => new(Vip, Protocol, Port);

    public long Drops(DropReason reason) => Total.Drops[(int)reason];

    /// <summary>Index of the backend at ip:port, or -1.</summary>
    public int Find(IpAddr ip, ushort port)
    {
        for (int i = 0; i < Backends.Count; i++)
            if (Backends[i].Info.Ip == ip && Backends[i].Info.Port == port)
                return i;
        return -1;
    }

    /// <summary>Rebuilds the Maglev table from the backends that take new flows.</summary>
    public void Rebuild() => Table = Build();

    private MaglevTable Build()
    {
        var ids = new string[Backends.Count];
        var weights = new int[Backends.Count];
        for (int i = 0; i < Backends.Count; i++)
        {
            ids[i] = Backends[i].Info.Identity;
            weights[i] = Backends[i].TakesNewFlows ? Backends[i].Info.Weight : 0;
        }
        return new MaglevTable(ids, weights, _tableSize);
    }

    /// <summary>Takes a backend out of (or back into) the table for new flows, as the health checker sees it.</summary>
    public void SetOut(int backend, bool isOut)
    {
        if (Backends[backend].Unhealthy == isOut)
            return;
        Backends[backend].Unhealthy = isOut;
        Rebuild();
    }
}
