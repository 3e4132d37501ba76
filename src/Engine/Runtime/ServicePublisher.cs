using ZonLb.Engine.Services;

namespace ZonLb.Engine.Runtime;

/// <summary>
/// Hands the workers new versions of the service table, RCU-style: the control plane publishes a version (one
/// reference write), each worker moves to it between two batches (<see cref="Worker.AdoptServices"/>), and
/// <see cref="PublishAsync"/> returns once every running worker has, so that a change is in force when its call
/// returns. No worker ever waits for the control plane, and nothing polls: the workers wake the publisher.
/// </summary>
internal sealed class ServicePublisher
{
    private ServiceTable _current;
    private TaskCompletionSource _adopted = NewSignal();

    public ServicePublisher(ServiceTable initial) => _current = initial;

    /// <summary>The newest version (what a worker moves to).</summary>
    public ServiceTable Current => Volatile.Read(ref _current);

    /// <summary>How long a publication waits for the workers before it returns anyway (a worker stuck in one
    /// batch that long is the watchdog's business, not the control plane's).</summary>
    public static readonly TimeSpan AdoptionTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Publishes a version and waits until every running worker uses it; false if that took longer
    /// than <see cref="AdoptionTimeout"/>. Callers publish one version at a time (the control lock).</summary>
    public async Task<bool> PublishAsync(ServiceTable next, Worker[] workers)
    {
        Volatile.Write(ref _current, next);
        foreach (var w in workers)
            w.Wakeup.Signal();
        var deadline = DateTime.UtcNow + AdoptionTimeout;
        while (true)
        {
            // the signal is renewed before the check, so an adoption after the check completes the new one
            var signal = NewSignal();
            Volatile.Write(ref _adopted, signal);
            if (Adopted(next.Version, workers))
                return true;
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !await WaitAsync(signal.Task, left))
                return Adopted(next.Version, workers);
        }
    }

    /// <summary>A worker moved to a new version, or stopped: whoever waits looks again.</summary>
    public void Signal() => Volatile.Read(ref _adopted).TrySetResult();

    private static bool Adopted(long version, Worker[] workers)
    {
        foreach (var w in workers)
            if (w.IsRunning && w.ServicesVersion < version)
                return false;
        return true;
    }

    private static async Task<bool> WaitAsync(Task task, TimeSpan timeout) => await Task.WhenAny(task, Task.Delay(timeout)) == task;

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
