using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Flows;

/// <summary>One translated connection: the client's view (client to VIP) and the backend's view (SNAT to backend).</summary>
internal struct Connection
{
    public IpAddr ClientIp;
    public ushort ClientPort;
    public IpAddr VipIp;
    public ushort VipPort;
    public IpAddr BackendIp;
    public ushort BackendPort;
    public IpAddr SnatIp;
    public ushort NatPort;
    public IpProtocol Protocol;
    public int ServiceIndex;
    public int BackendIndex;
    /// <summary>Next-hop cache slots last used toward the backend and toward the client (hints, checked on use).</summary>
    public int HopToBackend;
    public int HopToClient;
    public long LastSeen;
    public TcpState TcpState;
    /// <summary>TCP: the first FIN came from the client.</summary>
    public bool FinFromClient;
    /// <summary>The backend has answered (UDP: the stream timeout applies).</summary>
    public bool Replied;
    public bool InUse;
    /// <summary>Direct server return: no NAT port, no backend-side key (replies bypass us).</summary>
    public bool Dsr;
    /// <summary>The 802.1Q VLAN the client's packets arrive on (0: untagged): replies go back with it.</summary>
    public ushort ClientVlan;

    public readonly FlowKey ClientKey => new(ClientIp, VipIp, ClientPort, VipPort, Protocol);

    /// <summary>The key of a reply from the backend. ICMP echo replies carry the id in both "ports".</summary>
    public readonly FlowKey BackendKey => Protocol == IpProtocol.Icmp
        ? new(BackendIp, SnatIp, NatPort, NatPort, Protocol)
        : new(BackendIp, SnatIp, BackendPort, NatPort, Protocol);
}

/// <summary>
/// The connection table: a fixed array of entries indexed from both directions. Sized once; inserts fail
/// when it is full (the caller counts it). Owned by one worker thread.
/// </summary>
internal sealed class ConnectionTable
{
    private readonly Connection[] _entries;
    private readonly int[] _freeList;
    private int _freeCount;
    private readonly Dictionary<FlowKey, int> _byClient;
    private readonly Dictionary<FlowKey, int> _byBackend;
    private int _sweepCursor;

    public ConnectionTable(int capacity)
    {
        if (capacity <= 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be positive");
        _entries = new Connection[capacity];
        _freeList = new int[capacity];
        for (int i = 0; i < capacity; i++)
            _freeList[i] = capacity - 1 - i;
        _freeCount = capacity;
        _byClient = new Dictionary<FlowKey, int>(capacity);
        _byBackend = new Dictionary<FlowKey, int>(capacity);
    }

    public int Capacity => _entries.Length;
    public int Count => _entries.Length - _freeCount;

    public ref Connection this[int index] => ref _entries[index];

    public bool TryGetByClient(in FlowKey key, out int index) => _byClient.TryGetValue(key, out index);

    public bool TryGetByBackend(in FlowKey key, out int index) => _byBackend.TryGetValue(key, out index);

    /// <summary>Adds a connection; -1 when the table is full or either key is taken.</summary>
    public int Add(in Connection c)
    {
        if (_freeCount == 0)
            return -1;
        var ck = c.ClientKey;
        var bk = c.BackendKey;
        if (_byClient.ContainsKey(ck) || (!c.Dsr && _byBackend.ContainsKey(bk)))
            return -1;
        int index = _freeList[--_freeCount];
        _entries[index] = c;
        _entries[index].InUse = true;
        _byClient.Add(ck, index);
        if (!c.Dsr)
            _byBackend.Add(bk, index);
        return index;
    }

    public void Remove(int index)
    {
        ref var c = ref _entries[index];
        if (!c.InUse)
            return;
        _byClient.Remove(c.ClientKey);
        if (!c.Dsr)
            _byBackend.Remove(c.BackendKey);
        c = default;
        _freeList[_freeCount++] = index;
    }

    /// <summary>Examines up to budget slots from where the last sweep stopped and removes those whose
    /// timeout has passed; calls onExpired before each removal. Bounded work per call, so the data path never stalls.</summary>
    public int Sweep(long now, int budget, Func<Connection, long> timeoutOf, Action<Connection>? onExpired)
    {
        int removed = 0;
        for (int n = 0; n < budget && n < _entries.Length; n++)
        {
            int i = _sweepCursor;
            _sweepCursor = _sweepCursor + 1 == _entries.Length ? 0 : _sweepCursor + 1;
            ref var c = ref _entries[i];
            if (c.InUse && now - c.LastSeen > timeoutOf(c))
            {
                onExpired?.Invoke(c);
                Remove(i);
                removed++;
            }
        }
        return removed;
    }
}
