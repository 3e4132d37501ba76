using System.Numerics;
using System.Runtime.CompilerServices;
using ZonLb.Engine.Packets;
using ZonLb.Native.Memory;

namespace ZonLb.Engine.Flows;

/// <summary>One translated connection: the client's view (client to VIP) and the backend's view (SNAT to backend).</summary>
internal struct Connection
{
    // 128 bytes (two cache lines, prefetched as a pair): the four addresses fill the first, the rest the second.
    public IpAddr ClientIp;
    public IpAddr VipIp;
    public IpAddr BackendIp;
    public IpAddr SnatIp;
    public long LastSeen;
    /// <summary>When the first packet came (ms, the data path's clock).</summary>
    public long Created;
    public int ServiceIndex;
    public int BackendIndex;
    /// <summary>The owning worker's counters of this connection's backend: their index in its processor's list
    /// (a small, hot array, where a per-entry array of references would be one more cache miss per packet).</summary>
    public int CountersId;
    /// <summary>Next-hop cache slots last used toward the backend and toward the client (hints, checked on use).</summary>
    public int HopToBackend;
    public int HopToClient;
    /// <summary>TCP: the sequence number after the client's last SYN or FIN (what a backend in TIME_WAIT expects a
    /// new SYN on this tuple to be beyond).</summary>
    public uint ClientSeqEnd;
    public ushort ClientPort;
    public ushort VipPort;
    public ushort BackendPort;
    public ushort NatPort;
    /// <summary>The 802.1Q VLAN the client's packets arrive on (0: untagged): replies go back with it.</summary>
    public ushort ClientVlan;
    public IpProtocol Protocol;
    public TcpState TcpState;
    /// <summary>TCP: the first FIN came from the client.</summary>
    public bool FinFromClient;
    /// <summary>The backend has answered.</summary>
    public bool Replied;
    /// <summary>Seen working both ways (conntrack's IPS_ASSURED): TCP established with a reply, UDP replied and still
    /// active 2 s after it began. Entries not assured are the first to go when the table or the NAT ports are full.</summary>
    public bool Assured;
    public bool InUse;
    /// <summary>Direct server return: no NAT port, no backend-side key (replies bypass us).</summary>
    public bool Dsr;

    public readonly FlowKey ClientKey => new(ClientIp, VipIp, ClientPort, VipPort, Protocol);

    /// <summary>What full NAT makes of a packet of this connection: toward the backend, from the SNAT address and NAT
    /// port to the backend; back toward the client, from the VIP to the client.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Toward(bool toBackend, out IpAddr src, out IpAddr dst, out ushort sport, out ushort dport)
    {
        if (toBackend)
        {
            src = SnatIp; dst = BackendIp; sport = NatPort; dport = BackendPort;
        }
        else
        {
            src = VipIp; dst = ClientIp; sport = VipPort; dport = ClientPort;
        }
    }

    /// <summary>The key of a reply from the backend. ICMP echo replies carry the id in both "ports".</summary>
    public readonly FlowKey BackendKey => Protocol == IpProtocol.Icmp
        ? new(BackendIp, SnatIp, NatPort, NatPort, Protocol)
        : new(BackendIp, SnatIp, BackendPort, NatPort, Protocol);
}

/// <summary>
/// The connection table: a fixed array of entries, indexed from both directions by two open-addressing hash
/// indexes (client-side keys and backend-side keys). Sized once; inserts fail when it is full (the caller counts
/// it). Owned by one worker thread.
/// <para>
/// Each index is a power-of-two array of 8-byte slots, at most half full: a slot holds the key's 32-bit hash
/// (its tag) and the entry's number + 1 (0: empty). A lookup probes linearly from hash &amp; mask, compares tags,
/// and compares the key only against an entry whose tag matched; a removal shifts the following slots back
/// (no tombstones), so probe chains stay short however long the table lives. Eight slots share a cache line,
/// so a probe is one line of the index plus the entry's line, which the packet needs next anyway.
/// </para>
/// <para>
/// Large tables are cache and TLB misses: entries and indexes live in <see cref="HugePageArray{T}"/>s (2 MiB pages
/// where the kernel allows), and a batch of lookups can be split in passes: <see cref="PrefetchSlot"/> (or
/// <see cref="PrefetchByClient"/>, which hashes the key too) prefetches their slots, <see cref="PrefetchEntry"/> prefetches
/// the entry a slot names, and the lookups that follow find both in the cache.
/// </para>
/// </summary>
internal sealed class ConnectionTable : IDisposable
{
    private readonly HugePageArray<Connection> _entries;
    private readonly int _capacity;
    private readonly int[] _freeList;
    private int _freeCount;
    private readonly HugePageArray<ulong> _byClient;
    private readonly HugePageArray<ulong> _byBackend;
    private readonly long _mask;
    private int _sweepCursor;

    public ConnectionTable(int capacity)
    {
        if (capacity <= 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be positive");
        _capacity = capacity;
        // populated now: first touches of 2 MiB pages in the data path stalled it for milliseconds
        _entries = new HugePageArray<Connection>(capacity, populate: true);
        _freeList = new int[capacity];
        for (int i = 0; i < capacity; i++)
            _freeList[i] = capacity - 1 - i;
        _freeCount = capacity;
        long slots = (long)BitOperations.RoundUpToPowerOf2((ulong)capacity * 2);
        _mask = slots - 1;
        _byClient = new HugePageArray<ulong>(slots, populate: true);
        _byBackend = new HugePageArray<ulong>(slots, populate: true);
    }

    public int Capacity => _capacity;
    public int Count => _capacity - _freeCount;

    public ref Connection this[int index] => ref _entries[index];

    public bool TryGetByClient(in FlowKey key, out int index) => TryGetByClient(in key, key.GetHashCode(), out index);

    public bool TryGetByBackend(in FlowKey key, out int index) => TryGetByBackend(in key, key.GetHashCode(), out index);

    /// <summary>A lookup by client-side key whose hash (<see cref="FlowKey.GetHashCode"/>) is known.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // one compiled probe per index, kept out of the (large) pipeline
    public bool TryGetByClient(in FlowKey key, int hash, out int index) => Find(_byClient, in key, hash, backendSide: false, out index);

    /// <summary>A lookup by backend-side key (a reply: backend to SNAT address) whose hash is known.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public bool TryGetByBackend(in FlowKey key, int hash, out int index) => Find(_byBackend, in key, hash, backendSide: true, out index);

    /// <summary>The same lookup as <see cref="TryGetByClient(in FlowKey, int, out int)"/> or
    /// <see cref="TryGetByBackend(in FlowKey, int, out int)"/>, compiled into its caller (the fast lane), where the
    /// key can stay in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGetInlined(bool backendSide, in FlowKey key, int hash, out int index) =>
        backendSide ? Find(_byBackend, in key, hash, backendSide: true, out index) : Find(_byClient, in key, hash, backendSide: false, out index);

    /// <summary>Probes an index from the hash's home slot; the key is compared only with entries whose tag matched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // backendSide is a constant at each call: one comparison is compiled
    private bool Find(HugePageArray<ulong> slots, in FlowKey key, int hash, bool backendSide, out int index)
    {
        long i = (uint)hash & _mask;
        while (true)
        {
            ulong slot = slots[i];
            if (slot == 0)
            {
                index = -1;
                return false;
            }
            if ((uint)(slot >> 32) == (uint)hash)
            {
                int e = (int)(uint)slot - 1;
                if (backendSide ? IsBackendKeyOf(in _entries[e], in key) : IsClientKeyOf(in _entries[e], in key))
                {
                    index = e;
                    return true;
                }
            }
            i = (i + 1) & _mask;
        }
    }

    private static bool IsClientKeyOf(in Connection c, in FlowKey key) =>
        c.ClientPort == key.SrcPort && c.VipPort == key.DstPort && c.ClientIp == key.SrcIp && c.VipIp == key.DstIp &&
        c.Protocol == key.Protocol;

    /// <summary>ICMP echo replies carry the NAT id in both "ports" (see <see cref="Connection.BackendKey"/>).</summary>
    private static bool IsBackendKeyOf(in Connection c, in FlowKey key) =>
        c.NatPort == key.DstPort && (c.Protocol == IpProtocol.Icmp ? c.NatPort : c.BackendPort) == key.SrcPort &&
        c.BackendIp == key.SrcIp && c.SnatIp == key.DstIp && c.Protocol == key.Protocol;

    /// <summary>Hashes a client-side key and prefetches its home slot; returns the hash for the lookup.</summary>
    public int PrefetchByClient(in FlowKey key)
    {
        int hash = key.GetHashCode();
        _byClient.Prefetch((uint)hash & _mask);
        return hash;
    }

    /// <summary>Prefetches the home slot of a hash already computed, in the index of one side.</summary>
    public void PrefetchSlot(int hash, bool backendSide) => (backendSide ? _byBackend : _byClient).Prefetch((uint)hash & _mask);

    /// <summary>Prefetches the entry that the home slot of a hash names when its tag matches (the likely hit),
    /// after <see cref="PrefetchSlot"/> or <see cref="PrefetchByClient"/> had the slot loaded.</summary>
    public void PrefetchEntry(int hash, bool backendSide)
    {
        ulong slot = (backendSide ? _byBackend : _byClient)[(uint)hash & _mask];
        if (slot != 0 && (uint)(slot >> 32) == (uint)hash)
            _entries.Prefetch((int)(uint)slot - 1);
    }

    /// <summary>Looks up a batch of client-side keys in three passes (hash and prefetch the slots, prefetch the
    /// entries, then probe), so that their cache misses overlap; indexes[i] is -1 for a miss. Returns the hits.
    /// (Prefetching a fixed distance ahead within one pass measured no better at 10 million entries.)</summary>
    public int TryGetByClientBatch(ReadOnlySpan<FlowKey> keys, Span<int> indexes)
    {
        for (int i = 0; i < keys.Length; i++)
            indexes[i] = PrefetchByClient(in keys[i]);
        for (int i = 0; i < keys.Length; i++)
            PrefetchEntry(indexes[i], backendSide: false);
        int hits = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            if (TryGetByClient(in keys[i], indexes[i], out indexes[i]))
                hits++;
        }
        return hits;
    }

    /// <summary>Adds a connection; -1 when the table is full or either key is taken.</summary>
    public int Add(in Connection c)
    {
        if (_freeCount == 0)
            return -1;
        var ck = c.ClientKey;
        var bk = c.BackendKey;
        int ch = ck.GetHashCode(), bh = bk.GetHashCode();
        if (TryGetByClient(in ck, ch, out _) || (!c.Dsr && TryGetByBackend(in bk, bh, out _)))
            return -1;
        int index = _freeList[--_freeCount];
        ref var e = ref _entries[index];
        e = c;
        e.InUse = true;
        Insert(_byClient, ch, index);
        if (!c.Dsr)
            Insert(_byBackend, bh, index);
        return index;
    }

    public void Remove(int index)
    {
        ref var c = ref _entries[index];
        if (!c.InUse)
            return;
        Delete(_byClient, c.ClientKey.GetHashCode(), index);
        if (!c.Dsr)
            Delete(_byBackend, c.BackendKey.GetHashCode(), index);
        c = default;
        _freeList[_freeCount++] = index;
    }

    private void Insert(HugePageArray<ulong> slots, int hash, int index)
    {
        long i = (uint)hash & _mask;
        while (slots[i] != 0)
            i = (i + 1) & _mask;
        slots[i] = (ulong)(uint)hash << 32 | (uint)(index + 1);
    }

    /// <summary>Empties the slot of an entry and shifts the slots after it back, where their probe chains allow
    /// (backward-shift deletion: no tombstones).</summary>
    private void Delete(HugePageArray<ulong> slots, int hash, int index)
    {
        long i = (uint)hash & _mask;
        ulong wanted = (uint)(index + 1);
        while (true)
        {
            ulong slot = slots[i];
            if (slot == 0)
                return; // not indexed (never happens for an entry in use)
            if ((uint)slot == wanted)
                break;
            i = (i + 1) & _mask;
        }
        long j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            ulong slot = slots[j];
            if (slot == 0)
                break;
            long home = (uint)(slot >> 32) & _mask;
            // the slot at j may move into the hole at i unless its home lies after i (cyclically, in (i, j])
            if (((j - home) & _mask) >= ((j - i) & _mask))
            {
                slots[i] = slot;
                i = j;
            }
        }
        slots[i] = 0;
    }

    /// <summary>Examines up to budget slots from where the last sweep stopped and removes those whose
    /// timeout has passed; calls onExpired before each removal. Bounded work per call, so the data path never stalls.</summary>
    public int Sweep(long now, int budget, Func<Connection, long> timeoutOf, Action<Connection>? onExpired)
    {
        int removed = 0;
        for (int n = 0; n < budget && n < _capacity; n++)
        {
            int i = _sweepCursor;
            _sweepCursor = _sweepCursor + 1 == _capacity ? 0 : _sweepCursor + 1;
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

    /// <summary>Unmaps the entries and the indexes; the table is unusable afterwards.</summary>
    public void Dispose()
    {
        _entries.Dispose();
        _byClient.Dispose();
        _byBackend.Dispose();
    }
}
