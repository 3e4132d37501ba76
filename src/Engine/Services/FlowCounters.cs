using System.Runtime.InteropServices;
using ZonLb.Engine.Counters;

namespace ZonLb.Engine.Services;

/// <summary>
/// Traffic counters of a service or a backend, for one worker, written by that worker only and summed by readers
/// (<see cref="Sum"/>) without stopping it. The counters sit in a cache line of their own, with a line of padding on
/// each side: the blocks of the workers are allocated one after another, and without the padding one worker's
/// writes would keep taking the line another worker writes.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal sealed class FlowCounters
{
    /// <summary>Dropped frames by reason (rare, so in an array of their own).</summary>
    [FieldOffset(0)] public readonly long[] Drops = new long[DropReasonNames.Count];
    /// <summary>Per-worker counters only: their index in the list of <see cref="IdOwner"/>, the worker's
    /// processor that gave it at their first connection (see <see cref="Flows.Connection.CountersId"/>).</summary>
    [FieldOffset(8)] public object? IdOwner;
    [FieldOffset(16)] public int Id;
    [FieldOffset(64)] public long PacketsToBackend;
    [FieldOffset(72)] public long BytesToBackend;
    [FieldOffset(80)] public long PacketsToClient;
    [FieldOffset(88)] public long BytesToClient;
    [FieldOffset(96)] public long NewConnections;
    [FieldOffset(104)] public long ActiveConnections;

    public static FlowCounters[] For(int workers)
    {
        var all = new FlowCounters[workers];
        for (int i = 0; i < workers; i++)
            all[i] = new FlowCounters();
        return all;
    }

    public static FlowCounters Sum(FlowCounters[] all)
    {
        var t = new FlowCounters();
        foreach (var c in all)
        {
            t.PacketsToBackend += Volatile.Read(ref c.PacketsToBackend);
            t.BytesToBackend += Volatile.Read(ref c.BytesToBackend);
            t.PacketsToClient += Volatile.Read(ref c.PacketsToClient);
            t.BytesToClient += Volatile.Read(ref c.BytesToClient);
            t.NewConnections += Volatile.Read(ref c.NewConnections);
            t.ActiveConnections += Volatile.Read(ref c.ActiveConnections);
            for (int i = 0; i < t.Drops.Length; i++)
                t.Drops[i] += Volatile.Read(ref c.Drops[i]);
        }
        return t;
    }
}
