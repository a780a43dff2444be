## Automated runs of Lighthouse (`renpy samples/renpy_vn test NAME`), as the tests drive it.

## The story, back to the menu, the same choice again (replayed), back again, the other choice (a
## new branch), then a save and a load: each event is sent once.
testcase branches:
    click
    click
    "Climb the stairs"
    click
    run Rollback()
    pause 0.5
    run Rollback()
    pause 0.5
    "Climb the stairs"
    click
    run Rollback()
    pause 0.5
    run Rollback()
    pause 0.5
    "Wait for morning"
    click
    click
    run FileSave(1, confirm=False)
    pause 0.5
    run FileLoad(1, confirm=False)
    pause 1.0
    $ renpy.quit()

## In a new process, the save that `branches` made: what was sent before the save is not sent again.
testcase load_again:
    pause 0.5
    run FileLoad(1, confirm=False)
    pause 1.0
    click
    pause 0.5
    $ renpy.quit()

## The window loses focus for two seconds (as the system would tell it), then has it again:
## those seconds are not playtime.
testcase focus:
    click
    $ import pygame_sdl2
    $ pygame_sdl2.event.set_allowed(pygame_sdl2.ACTIVEEVENT)
    $ pygame_sdl2.event.post(pygame_sdl2.event.Event(pygame_sdl2.ACTIVEEVENT, state=2, gain=0))
    pause 2.0
    $ pygame_sdl2.event.post(pygame_sdl2.event.Event(pygame_sdl2.ACTIVEEVENT, state=2, gain=1))
    pause 1.0
    $ renpy.quit()

## Play on, until something outside ends the process (the tests kill it, as a crash would).
testcase linger:
    click
    pause 4.0
    pause 4.0
    pause 4.0
    pause 4.0
    pause 4.0
    $ renpy.quit()

## Start, and quit at once: what a crashed run left is sent now.
testcase relaunch:
    pause 1.0
    $ renpy.quit()
