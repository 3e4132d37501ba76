namespace ZonLb.Engine;

/// <summary>The data path's fault when a worker stopped coming round its loop for engine.worker_stall_ms (a hang, a
/// livelock, a thread never scheduled again): <see cref="LoadBalancer.Fault"/>.</summary>
public sealed class WorkerStalledException : Exception
{
    /// <param name="worker">The worker's index.</param>
    /// <param name="silentMilliseconds">How long it had not come round its loop when it was seen.</param>
    /// <param name="limitMilliseconds">engine.worker_stall_ms.</param>
    public WorkerStalledException(int worker, long silentMilliseconds, int limitMilliseconds)
        : base($"worker {worker} has not come round its loop for {silentMilliseconds} ms (engine.worker_stall_ms = {limitMilliseconds})")
    {
        Worker = worker;
    }

    /// <summary>The stalled worker's index.</summary>
    public int Worker { get; }
}
