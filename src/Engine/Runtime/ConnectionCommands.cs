using ZonLb.Engine.Flows;

namespace ZonLb.Engine.Runtime;

/// <summary>Copies a worker's connections (those of one service, or all), at most a limit, a slice of the table
/// per step, into an array the control plane turns into reports.</summary>
internal sealed class CopyConnections : WorkerCommand<List<Connection>>
{
    /// <summary>Slots of the table looked at per step: a few microseconds.</summary>
    public const int SliceSlots = 4096;

    private readonly int _service;
    private readonly int _limit;
    private readonly List<Connection> _copied;
    private int _next;

    /// <param name="service">A service index, or -1 for all.</param>
    public CopyConnections(int service, int limit)
    {
        _service = service;
        _limit = limit;
        _copied = new List<Connection>(Math.Min(limit, 1 << 16));
    }

    protected override bool Run(Worker worker, out List<Connection> result)
    {
        var table = worker.Processor.Connections;
        int end = Math.Min(table.Capacity, _next + SliceSlots);
        for (; _next < end && _copied.Count < _limit; _next++)
        {
            ref var c = ref table[_next];
            if (c.InUse && (_service < 0 || c.ServiceIndex == _service))
                _copied.Add(c);
        }
        result = _copied;
        return _next >= table.Capacity || _copied.Count >= _limit;
    }
}

/// <summary>Removes a worker's connections that match, a slice of the table per step (their NAT ports freed);
/// returns how many.</summary>
internal sealed class FlushConnections : WorkerCommand<int>
{
    private readonly Func<Connection, bool>? _which;
    private int _next, _removed;

    /// <param name="which">Which connections go; null: all.</param>
    public FlushConnections(Func<Connection, bool>? which) => _which = which;

    protected override bool Run(Worker worker, out int result)
    {
        var p = worker.Processor;
        int end = Math.Min(p.Connections.Capacity, _next + CopyConnections.SliceSlots);
        _removed += p.FlushConnections(_next, end, _which);
        _next = end;
        result = _removed;
        return _next >= p.Connections.Capacity;
    }
}
