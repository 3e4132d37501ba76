using System.Numerics;
using System.Runtime.CompilerServices;
using ZonLb.Engine.Packets;
using ZonLb.Native.Memory;

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
    /// <summary>The owning worker's counters of this connection's backend: their index in its processor's list
    /// (a small, hot array, where a per-entry array of references would be one more cache miss per packet).</summary>
    public int CountersId;
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
/// The connection table, owned by one worker thread. Entries live in the client-side index itself: a
/// power-of-two array of 128-byte entries, at most half full, where an entry sits at its client key's hash &amp;
/// mask or the first free slot after it (linear probing). A lookup by client key therefore reads the entries it
/// probes and nothing else: at 10 million connections one DRAM access per hit, where a separate index costs a
/// second, dependent one. Replies are found through a backend-side index: 8-byte slots holding the backend key's
/// 32-bit hash (a tag) and the entry's slot + 1 (0: empty), also linear probing, at most half full.
/// <para>
/// Removal shifts the following entries (and index slots) back where their probe chains allow (backward-shift
/// deletion: no tombstones), so chains stay short however long the table lives. An entry's number (its slot)
/// is therefore stable only until another entry is removed: callers keep a number within one packet's
/// processing, or check it against the key (see <see cref="IsAt"/>). Loops that remove while they walk the table
/// look at the same slot again after a removal (<see cref="Sweep"/>), since a later entry may have moved there.
/// </para>
/// <para>
/// Large tables are cache and TLB misses: entries and the index live in <see cref="HugePageArray{T}"/>s (2 MiB
/// pages where the kernel allows), and a batch of lookups can be split in passes: <see cref="PrefetchSlot"/> (or
/// <see cref="PrefetchByClient"/>, which hashes the key too) prefetches the home slot, <see cref="PrefetchEntry"/>
/// prefetches the entry a backend-side slot names, and the lookups that follow find both in the cache.
/// </para>
/// </summary>
internal sealed class ConnectionTable : IDisposable
{
    private readonly HugePageArray<Connection> _entries;
    private readonly int _capacity;
    private int _count;
    private readonly HugePageArray<ulong> _byBackend;
    private readonly long _mask;
    private long _sweepCursor;

    public ConnectionTable(int capacity)
    {
        if (capacity <= 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "capacity must be positive");
        _capacity = capacity;
        long slots = (long)BitOperations.RoundUpToPowerOf2((ulong)capacity * 2);
        _mask = slots - 1;
        _entries = new HugePageArray<Connection>(slots);
        _byBackend = new HugePageArray<ulong>(slots);
    }

    /// <summary>How many connections it takes.</summary>
    public int Capacity => _capacity;
    public int Count => _count;
    /// <summary>Entry numbers run from 0 to Slots - 1; those not <see cref="Connection.InUse"/> are free.</summary>
    public int Slots => (int)(_mask + 1);

    public ref Connection this[int index] => ref _entries[index];

    /// <summary>Whether the connection with this client key is still at entry number index.</summary>
    public bool IsAt(int index, in FlowKey clientKey) =>
        (uint)index <= _mask && _entries[index].InUse && IsClientKeyOf(in _entries[index], in clientKey);

    public bool TryGetByClient(in FlowKey key, out int index) => TryGetByClient(in key, key.GetHashCode(), out index);

    public bool TryGetByBackend(in FlowKey key, out int index) => TryGetByBackend(in key, key.GetHashCode(), out index);

    /// <summary>A lookup by client-side key whose hash (<see cref="FlowKey.GetHashCode"/>) is known.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // one compiled probe per side, kept out of the (large) pipeline
    public bool TryGetByClient(in FlowKey key, int hash, out int index) => FindByClient(in key, hash, out index);

    /// <summary>A lookup by backend-side key (a reply: backend to SNAT address) whose hash is known.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public bool TryGetByBackend(in FlowKey key, int hash, out int index) => FindByBackend(in key, hash, out index);

    /// <summary>The same lookup as <see cref="TryGetByClient(in FlowKey, int, out int)"/> or
    /// <see cref="TryGetByBackend(in FlowKey, int, out int)"/>, compiled into its caller (the fast lane), where the
    /// key can stay in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGetInlined(bool backendSide, in FlowKey key, int hash, out int index) =>
        backendSide ? FindByBackend(in key, hash, out index) : FindByClient(in key, hash, out index);

    /// <summary>Probes the entries from the hash's home slot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FindByClient(in FlowKey key, int hash, out int index)
    {
        long i = (uint)hash & _mask;
        while (true)
        {
            ref var c = ref _entries[i];
            if (!c.InUse)
            {
                index = -1;
                return false;
            }
            if (IsClientKeyOf(in c, in key))
            {
                index = (int)i;
                return true;
            }
            i = (i + 1) & _mask;
        }
    }

    /// <summary>Probes the backend-side index from the hash's home slot; the key is compared only with entries
    /// whose tag matched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FindByBackend(in FlowKey key, int hash, out int index)
    {
        long i = (uint)hash & _mask;
        while (true)
        {
            ulong slot = _byBackend[i];
            if (slot == 0)
            {
                index = -1;
                return false;
            }
            if ((uint)(slot >> 32) == (uint)hash)
            {
                int e = (int)(uint)slot - 1;
                if (IsBackendKeyOf(in _entries[e], in key))
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

    /// <summary>Hashes a client-side key and prefetches its home slot (the entry there); returns the hash.</summary>
    public int PrefetchByClient(in FlowKey key)
    {
        int hash = key.GetHashCode();
        _entries.Prefetch((uint)hash & _mask);
        return hash;
    }

    /// <summary>Prefetches the home slot of a hash already computed: the entry there (client side) or the index
    /// slot (backend side).</summary>
    public void PrefetchSlot(int hash, bool backendSide)
    {
        if (backendSide)
            _byBackend.Prefetch((uint)hash & _mask);
        else
            _entries.Prefetch((uint)hash & _mask);
    }

    /// <summary>Backend side: prefetches the entry that the home slot of a hash names when its tag matches (the
    /// likely hit), after <see cref="PrefetchSlot"/> had the slot loaded. Client side: nothing (the slot is the entry).</summary>
    public void PrefetchEntry(int hash, bool backendSide)
    {
        if (!backendSide)
            return;
        ulong slot = _byBackend[(uint)hash & _mask];
        if (slot != 0 && (uint)(slot >> 32) == (uint)hash)
            _entries.Prefetch((int)(uint)slot - 1);
    }

    /// <summary>Looks up a batch of client-side keys in two passes (hash and prefetch the home slots, then probe),
    /// so that their cache misses overlap; indexes[i] is -1 for a miss. Returns the hits.
    /// (Prefetching a fixed distance ahead within one pass measured no better at 10 million entries.)</summary>
    public int TryGetByClientBatch(ReadOnlySpan<FlowKey> keys, Span<int> indexes)
    {
        for (int i = 0; i < keys.Length; i++)
            indexes[i] = PrefetchByClient(in keys[i]);
        int hits = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            if (TryGetByClient(in keys[i], indexes[i], out indexes[i]))
                hits++;
        }
        return hits;
    }

    /// <summary>Adds a connection; returns its entry number, or -1 when the table is full or either key is taken.</summary>
    public int Add(in Connection c)
    {
        if (_count == _capacity)
            return -1;
        var ck = c.ClientKey;
        var bk = c.BackendKey;
        int ch = ck.GetHashCode(), bh = bk.GetHashCode();
        if (FindByClient(in ck, ch, out _) || (!c.Dsr && FindByBackend(in bk, bh, out _)))
            return -1;
        long i = (uint)ch & _mask;
        while (_entries[i].InUse)
            i = (i + 1) & _mask;
        ref var e = ref _entries[i];
        e = c;
        e.InUse = true;
        if (!c.Dsr)
            InsertBackend(bh, (int)i);
        _count++;
        return (int)i;
    }

    /// <summary>Removes the connection at entry number index. Entries after it in its probe chain may move back,
    /// one of them into index itself.</summary>
    public void Remove(int index)
    {
        if ((uint)index > _mask || !_entries[index].InUse)
            return;
        ref var c = ref _entries[index];
        if (!c.Dsr)
            DeleteBackend(c.BackendKey.GetHashCode(), index);
        _count--;
        // backward-shift deletion over the entries: an entry after the hole moves into it unless its home slot
        // lies after the hole (cyclically, in (hole, j]); its backend-side slot is pointed at its new place
        long hole = index, j = index;
        while (true)
        {
            j = (j + 1) & _mask;
            ref var e = ref _entries[j];
            if (!e.InUse)
                break;
            long home = (uint)e.ClientKey.GetHashCode() & _mask;
            if (((j - home) & _mask) >= ((j - hole) & _mask))
            {
                if (!e.Dsr)
                    RetargetBackend(e.BackendKey.GetHashCode(), (int)j, (int)hole);
                _entries[hole] = e;
                hole = j;
            }
        }
        _entries[hole] = default;
    }

    private void InsertBackend(int hash, int index)
    {
        long i = (uint)hash & _mask;
        while (_byBackend[i] != 0)
            i = (i + 1) & _mask;
        _byBackend[i] = (ulong)(uint)hash << 32 | (uint)(index + 1);
    }

    /// <summary>The backend-side slot of hash that names entry from: where that entry is, or -1.</summary>
    private long BackendSlotOf(int hash, int from)
    {
        long i = (uint)hash & _mask;
        ulong wanted = (uint)(from + 1);
        while (true)
        {
            ulong slot = _byBackend[i];
            if (slot == 0)
                return -1; // not indexed (never happens for an entry in use)
            if ((uint)slot == wanted)
                return i;
            i = (i + 1) & _mask;
        }
    }

    private void RetargetBackend(int hash, int from, int to)
    {
        long i = BackendSlotOf(hash, from);
        if (i >= 0)
            _byBackend[i] = (ulong)(uint)hash << 32 | (uint)(to + 1);
    }

    /// <summary>Empties the backend-side slot of an entry and shifts the slots after it back, where their probe
    /// chains allow (backward-shift deletion: no tombstones).</summary>
    private void DeleteBackend(int hash, int index)
    {
        long i = BackendSlotOf(hash, index);
        if (i < 0)
            return;
        long j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            ulong slot = _byBackend[j];
            if (slot == 0)
                break;
            long home = (uint)(slot >> 32) & _mask;
            // the slot at j may move into the hole at i unless its home lies after i (cyclically, in (i, j])
            if (((j - home) & _mask) >= ((j - i) & _mask))
            {
                _byBackend[i] = slot;
                i = j;
            }
        }
        _byBackend[i] = 0;
    }

    /// <summary>Moves over up to budget slots from where the last sweep stopped and removes the connections whose
    /// timeout has passed; calls onExpired before each removal. Bounded work per call (budget slots and the
    /// removals), so the data path never stalls. After a removal the same slot is examined again: a later entry
    /// may have moved into it.</summary>
    public int Sweep(long now, int budget, Func<Connection, long> timeoutOf, Action<Connection>? onExpired)
    {
        int removed = 0;
        long slots = _mask + 1;
        for (long examined = 0; examined < budget && examined < slots;)
        {
            long i = _sweepCursor;
            ref var c = ref _entries[i];
            if (c.InUse && now - c.LastSeen > timeoutOf(c))
            {
                onExpired?.Invoke(c);
                Remove((int)i);
                removed++;
                continue; // the same slot again (at most once per entry removed)
            }
            _sweepCursor = (i + 1) & _mask;
            examined++;
        }
        return removed;
    }

    /// <summary>Unmaps the entries and the index; the table is unusable afterwards.</summary>
    public void Dispose()
    {
        _entries.Dispose();
        _byBackend.Dispose();
    }
}
