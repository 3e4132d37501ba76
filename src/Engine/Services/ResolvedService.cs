using ZonLb.Engine.Balancing;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Services;

/// <summary>
/// A running service as one version of the service table has it: its addresses as numbers, its backends (with
/// their SNAT addresses decided) and the Maglev table that assigns new flows. Immutable: a change builds a new
/// service (<see cref="WithBackend"/>, <see cref="WithBackendAdded"/>, <see cref="AsRemoved"/>) that shares the
/// counters, and the workers move to it at their next batch. Connections already assigned keep their backend
/// (by index: slots only ever get appended).
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
        Backends = backends.Select(b => new BackendSlot(b, workers)).ToArray();
        Table = Build(Backends, _tableSize);
    }

    private ResolvedService(ResolvedService from, BackendSlot[] backends, bool removed)
    {
        Dsr = from.Dsr;
        Name = from.Name;
        Vip = from.Vip;
        Protocol = from.Protocol;
        Port = from.Port;
        _tableSize = from._tableSize;
        Workers = from.Workers;
        PerWorker = from.PerWorker;
        Backends = backends;
        Removed = removed;
        Table = SameWeights(from.Backends, backends) ? from.Table : Build(backends, _tableSize);
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
    /// <summary>Every backend this service ever had in this run, by index.</summary>
    public BackendSlot[] Backends { get; }
    /// <summary>Removed from the configuration: no new flows; existing connections drain.</summary>
    public bool Removed { get; }

    /// <summary>The table new flows are assigned by.</summary>
    public MaglevTable Table { get; }

    public ServiceKey Key => new(Vip, Protocol, Port);

    public long Drops(DropReason reason) => Total.Drops[(int)reason];

    /// <summary>Index of the backend at ip:port, or -1.</summary>
    public int Find(IpAddr ip, ushort port)
    {
        for (int i = 0; i < Backends.Length; i++)
            if (Backends[i].Info.Ip == ip && Backends[i].Info.Port == port)
                return i;
        return -1;
    }

    /// <summary>This service with backend <paramref name="index"/> replaced (its Maglev table rebuilt when what
    /// takes new flows changed).</summary>
    public ResolvedService WithBackend(int index, BackendSlot slot)
    {
        var backends = (BackendSlot[])Backends.Clone();
        backends[index] = slot;
        return new ResolvedService(this, backends, Removed);
    }

    /// <summary>This service with one more backend, at the end.</summary>
    public ResolvedService WithBackendAdded(ResolvedBackend backend) =>
        new(this, Backends.Append(new BackendSlot(backend, Workers)).ToArray(), Removed);

    /// <summary>This service taking no new flows (its connections drain).</summary>
    public ResolvedService AsRemoved() => new(this, Backends, removed: true);

    private static bool SameWeights(BackendSlot[] a, BackendSlot[] b)
    {
        if (a.Length != b.Length)
            return false;
        for (int i = 0; i < a.Length; i++)
            if (a[i].Info.Identity != b[i].Info.Identity || Weight(a[i]) != Weight(b[i]))
                return false;
        return true;
    }

    private static int Weight(BackendSlot b) => b.TakesNewFlows ? b.Info.Weight : 0;

    private static MaglevTable Build(BackendSlot[] backends, int size)
    {
        var ids = new string[backends.Length];
        var weights = new int[backends.Length];
        for (int i = 0; i < backends.Length; i++)
        {
            ids[i] = backends[i].Info.Identity;
            weights[i] = Weight(backends[i]);
        }
        return new MaglevTable(ids, weights, size);
    }
}
