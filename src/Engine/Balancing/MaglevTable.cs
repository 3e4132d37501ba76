using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Balancing;

/// <summary>
/// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size in which every backend
/// fills slots in the order of its own permutation, in proportion to its weight. Removing or adding one of N
/// backends changes about 1/N of the slots, and the table depends only on the backends' identities, weights
/// and the table size, so every instance built from the same configuration maps a flow to the same backend.
/// </summary>
internal sealed class MaglevTable
{
    public const int DefaultSize = 65537;

    private readonly int[] _slots;

    /// <param name="identities">A stable identity per backend (for example "10.20.0.2:8080").</param>
    /// <param name="weights">Per backend; 0 takes the backend out of the table.</param>
    public MaglevTable(IReadOnlyList<string> identities, IReadOnlyList<int> weights, int size = DefaultSize)
    {
        if (!IsPrime(size))
            throw new ArgumentOutOfRangeException(nameof(size), size, "the Maglev table size must be a prime number");
        if (identities.Count != weights.Count)
            throw new ArgumentException("one weight per backend");
        _slots = new int[size];
        Array.Fill(_slots, -1);
        Build(identities, weights);
    }

    public int Size => _slots.Length;

    /// <summary>True when no backend has a positive weight: every lookup returns -1.</summary>
    public bool IsEmpty { get; private set; }

    /// <summary>The backend index for a flow hash, or -1 when the table is empty.</summary>
    public int Lookup(ulong flowHash) => _slots[(int)(flowHash % (ulong)_slots.Length)];

    /// <summary>How many slots each backend owns.</summary>
    public int[] SlotCounts(int backends)
    {
        var counts = new int[backends];
        foreach (int s in _slots)
            if (s >= 0)
                counts[s]++;
        return counts;
    }

    private void Build(IReadOnlyList<string> ids, IReadOnlyList<int> weights)
    {
        int n = ids.Count;
        int m = _slots.Length;
        int maxWeight = 0;
        for (int i = 0; i < n; i++)
        {
            if (weights[i] < 0)
                throw new ArgumentOutOfRangeException(nameof(weights), weights[i], "weights must not be negative");
            maxWeight = Math.Max(maxWeight, weights[i]);
        }
        if (maxWeight == 0)
        {
            IsEmpty = true;
            return;
        }
        var offset = new ulong[n];
        var skip = new ulong[n];
        var next = new ulong[n];
        var credit = new long[n];
        for (int i = 0; i < n; i++)
        {
            ulong h = StableHash.Of(ids[i]);
            offset[i] = (h >> 32) % (ulong)m;
            skip[i] = (h & 0xFFFFFFFF) % (ulong)(m - 1) + 1;
        }
        int filled = 0;
        while (true)
        {
            for (int i = 0; i < n; i++)
            {
                // Weighted turns: a backend takes a slot each time its credit reaches the largest weight.
                credit[i] += weights[i];
                while (credit[i] >= maxWeight)
                {
                    credit[i] -= maxWeight;
                    int slot;
                    do
                    {
                        slot = (int)((offset[i] + next[i] * skip[i]) % (ulong)m);
                        next[i]++;
                    } while (_slots[slot] >= 0);
                    _slots[slot] = i;
                    if (++filled == m)
                        return;
                }
            }
        }
    }

    public static bool IsPrime(int n)
    {
        if (n < 2)
            return false;
        if (n % 2 == 0)
            return n == 2;
        for (int d = 3; (long)d * d <= n; d += 2)
            if (n % d == 0)
                return false;
        return true;
    }
}

/// <summary>Hashes that are the same in every process and on every run (unlike string.GetHashCode).</summary>
internal static class StableHash
{
    /// <summary>FNV-1a over the UTF-16 code units, then a 64-bit finaliser.</summary>
    public static ulong Of(string s)
    {
        ulong h = 0xcbf29ce484222325UL;
        foreach (char c in s)
        {
            h ^= c;
            h *= 0x100000001b3UL;
        }
        return Mix(h);
    }

    /// <summary>The flow hash that picks a backend: client address and port, protocol, VIP and port.</summary>
    public static ulong Flow(uint clientIp, ushort clientPort, byte protocol, uint vip, ushort vipPort)
    {
        ulong a = ((ulong)clientIp << 32) | vip;
        ulong b = ((ulong)clientPort << 24) | ((ulong)vipPort << 8) | protocol;
        return Mix(a ^ Mix(b ^ 0x9E3779B97F4A7C15UL));
    }

    /// <summary>The flow hash of either family: IPv4 flows hash exactly as <see cref="Flow(uint, ushort, byte, uint, ushort)"/>.</summary>
    public static ulong Flow(in IpAddr client, ushort clientPort, byte protocol, in IpAddr vip, ushort vipPort)
    {
        if (client.IsV4 && vip.IsV4)
            return Flow(client.V4, clientPort, protocol, vip.V4, vipPort);
        ulong a = Mix(client.Hi ^ Mix(client.Lo)) ^ Mix(vip.Hi ^ Mix(vip.Lo ^ 0x6A09E667F3BCC909UL));
        ulong b = ((ulong)clientPort << 24) | ((ulong)vipPort << 8) | protocol;
        return Mix(a ^ Mix(b ^ 0x9E3779B97F4A7C15UL));
    }

    /// <summary>splitmix64's finaliser.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
