/** How many timers are live now: the policies' tests compare this before and after. */
export function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}
