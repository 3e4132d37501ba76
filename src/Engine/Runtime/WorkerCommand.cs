namespace ZonLb.Engine.Runtime;

/// <summary>
/// Work the control plane needs done on a worker's own tables (copy its connections, flush some, take new
/// sockets): queued to the worker, which runs it between two batches a bounded step at a time, so that
/// forwarding never waits long for it. The control plane awaits <see cref="WorkerCommand{T}.Completion"/>.
/// </summary>
internal abstract class WorkerCommand
{
    /// <summary>One bounded step of the work, on the worker thread (or on the caller's once the workers have
    /// stopped); true when the work is done.</summary>
    public abstract bool Step(Worker worker);

    /// <summary>Marks the command failed (its worker stopped before it ran).</summary>
    public abstract void Abandon(Exception reason);
}

/// <summary>A worker command with a result.</summary>
internal abstract class WorkerCommand<T> : WorkerCommand
{
    private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<T> Completion => _done.Task;

    public sealed override bool Step(Worker worker)
    {
        try
        {
            if (!Run(worker, out T result))
                return false;
            _done.TrySetResult(result);
        }
        catch (Exception e)
        {
            _done.TrySetException(e);
        }
        return true;
    }

    /// <summary>One step; true with the result when done.</summary>
    protected abstract bool Run(Worker worker, out T result);

    public sealed override void Abandon(Exception reason) => _done.TrySetException(reason);
}

/// <summary>A one-step command from a function of the worker.</summary>
internal sealed class WorkerAction<T> : WorkerCommand<T>
{
    private readonly Func<Worker, T> _f;

    public WorkerAction(Func<Worker, T> f) => _f = f;

    protected override bool Run(Worker worker, out T result)
    {
        result = _f(worker);
        return true;
    }
}
