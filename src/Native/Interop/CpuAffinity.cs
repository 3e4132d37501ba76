namespace ZonLb.Native.Interop;

/// <summary>Places the calling thread: its CPU, nice value or real-time priority.</summary>
public static unsafe class CpuAffinity
{
    /// <summary>The calling thread's nice value (-20 most favoured .. 19): a data-path thread sharing a core with
    /// the kernel's receive work gets its turn more often with a lower value.</summary>
    public static void SetCurrentThreadNice(int nice)
    {
        if (Libc.setpriority(0 /* PRIO_PROCESS */, 0 /* the calling thread */, nice) != 0)
            throw NativeException.FromLastError($"setpriority({nice})");
    }

    /// <summary>Makes the calling thread SCHED_FIFO at <paramref name="priority"/> (1-99): it then runs whenever it
    /// is runnable, ahead of every normal thread and the kernel's threaded NAPI on its CPU, so it must sleep when
    /// it has nothing to do.</summary>
    public static void SetCurrentThreadFifo(int priority)
    {
        if (priority is < 1 or > 99)
            throw new ArgumentOutOfRangeException(nameof(priority), priority, "SCHED_FIFO priorities are 1-99");
        if (Libc.sched_setscheduler(0, Libc.SCHED_FIFO, &priority) != 0)
            throw NativeException.FromLastError($"sched_setscheduler(SCHED_FIFO, priority {priority}) for engine.worker_fifo_priority " +
                "(needs CAP_SYS_NICE, and real-time runtime in the process's cgroup on kernels with CONFIG_RT_GROUP_SCHED)");
    }

    /// <summary>As <see cref="SetCurrentThreadFifo"/>, but false instead of an exception when the process may not.</summary>
    public static bool TrySetCurrentThreadFifo(int priority) => Libc.sched_setscheduler(0, Libc.SCHED_FIFO, &priority) == 0;

    /// <summary>The CPUs the calling thread may run on (its affinity mask: all of the machine's, or what taskset or a
    /// cgroup left), in ascending order; the first 1,024.</summary>
    public static IReadOnlyList<int> AllowedCpus()
    {
        var mask = stackalloc ulong[16];
        if (Libc.sched_getaffinity(0, 16 * 8, mask) != 0)
            throw NativeException.FromLastError("sched_getaffinity");
        var cpus = new List<int>();
        for (int i = 0; i < 1024; i++)
            if ((mask[i / 64] & (1UL << (i % 64))) != 0)
                cpus.Add(i);
        return cpus;
    }

    public static void PinCurrentThread(int cpu)
    {
        if (cpu is < 0 or >= 64)
            throw new ArgumentOutOfRangeException(nameof(cpu), cpu, "CPU numbers 0-63 are supported");
        ulong mask = 1UL << cpu;
        if (Libc.sched_setaffinity(0, 8, &mask) != 0)
            throw NativeException.FromLastError($"sched_setaffinity(cpu {cpu})");
    }
}
