namespace ZonLb.Engine.Runtime;

/// <summary>
/// The watchdog: a thread of its own looks at every worker's heartbeat a few times a second. A worker silent for
/// engine.worker_stall_ms is stalled: its queues leave the steering map at once (their frames go to the kernel instead
/// of into rings nobody drains), and the data path fails (<see cref="Fault"/>), which `run` answers by detaching
/// everything and exiting 1, for systemd to restart it. <see cref="WorkersAlive"/> is what `run` sends systemd's
/// WATCHDOG=1 on.
/// </summary>
internal sealed partial class Dataplane
{
    private Thread? _watchdog;
    private readonly ManualResetEventSlim _watchdogStop = new();

    /// <summary>Every running worker came round its loop within the stall limit (always, with the watchdog off).</summary>
    public bool WorkersAlive
    {
        get
        {
            int limit = _config.Engine.WorkerStallMilliseconds;
            long now = Environment.TickCount64;
            foreach (var w in _workers)
                if (limit > 0 && (!w.IsRunning || now - w.Heartbeat >= limit))
                    return false;
            return Fault == null;
        }
    }

    private void StartWatchdog()
    {
        int limit = _config.Engine.WorkerStallMilliseconds;
        if (limit <= 0)
            return;
        _watchdog = new Thread(() => Watch(limit)) { Name = "zonlb-watchdog", IsBackground = true };
        _watchdog.Start();
    }

    private void Watch(int limit)
    {
        int period = Math.Clamp(limit / 4, 10, 250);
        while (!_watchdogStop.Wait(period))
        {
            long now = Environment.TickCount64;
            foreach (var w in _workers)
            {
                long silent = now - w.Heartbeat;
                if (!w.IsRunning || silent < limit)
                    continue;
                Stalled(w, silent, limit);
                return;
            }
        }
    }

    private void Stalled(Worker w, long silent, int limit)
    {
        var e = new WorkerStalledException(w.Index, silent, limit);
        lock (_socketsLock)
        {
            foreach (var s in w.Owned)
            {
                var port = _ports.FirstOrDefault(p => p.IfIndex == s.InterfaceIndex && !p.Missing);
                if (port != null)
                    _program?.ClearSocket(port.FirstSlot + (uint)s.QueueId);
            }
        }
        _log($"error: {e.Message}: its {w.Owned.Count} queue(s) are no longer steered (their frames go to the kernel); stopping");
        Fault ??= e;
    }

    private void StopWatchdog()
    {
        _watchdogStop.Set();
        if (_watchdog != null && _watchdog.IsAlive && Thread.CurrentThread != _watchdog)
            _watchdog.Join();
    }
}
