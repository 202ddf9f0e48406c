! Trains a small network through the Fortran module on four Gaussian blobs whose classes form
! an XOR pattern, and stops with a non-zero code unless it classifies 95% of a test set.
program blobs
  use, intrinsic :: iso_c_binding, only: c_int, c_int64_t, c_float
  use shardprop
  implicit none

  integer, parameter :: train_rows = 2000, test_rows = 1000
  ! features(feature, row): column-major, the row-major [rows, 2] layout the library reads.
  real(c_float) :: train_x(2, train_rows), train_t(train_rows)
  real(c_float) :: test_x(2, test_rows), test_t(test_rows)
  type(c_ptr) :: model, trainer
  type(shardprop_trainer_settings) :: settings
  type(shardprop_metrics) :: epoch, test
  integer(c_int) :: status
  integer :: e

  call make_blobs(train_x, train_t, 11)
  call make_blobs(test_x, test_t, 12)

  status = shardprop_model_create("dense(16) tanh dense(2)", 2, "xent", 7_c_int64_t, model)
  call check(status, "shardprop_model_create")

  status = shardprop_trainer_settings_init(settings)
  settings%batch_size = 32
  settings%learning_rate = 0.05
  settings%momentum = 0.9
  settings%threads = 2
  status = shardprop_trainer_create(model, settings, trainer)
  call check(status, "shardprop_trainer_create")

  do e = 1, 20
    status = shardprop_trainer_train_epoch(trainer, train_x, train_t, &
                                           int(train_rows, c_int64_t), 2, 1, epoch)
    call check(status, "shardprop_trainer_train_epoch")
  end do

  status = shardprop_model_evaluate(model, test_x, test_t, int(test_rows, c_int64_t), 2, 1, &
                                    0, test)
  call check(status, "shardprop_model_evaluate")
  print '(a, a, a, f7.4, a, f6.2, a)', "shardprop ", shardprop_version(), ": last epoch loss ", &
    epoch%loss, ", test accuracy ", 100 * test%accuracy, "%"

  call shardprop_trainer_free(trainer)
  call shardprop_model_free(model)
  if (test%accuracy < 0.95) error stop 1

contains

  ! Four blobs at (±1, ±1); class 1 where the signs differ (XOR), class 0 where they agree.
  subroutine make_blobs(x, t, seed)
    real(c_float), intent(out) :: x(:, :), t(:)
    integer, intent(in) :: seed
    integer :: i, corner
    integer(8) :: state
    real :: u1, u2, radius
    state = int(seed, 8)
    do i = 1, size(t)
      corner = mod(i, 4)
      u1 = next_uniform(state)
      u2 = next_uniform(state)
      radius = 0.3 * sqrt(-2.0 * log(max(u1, 1e-7)))  ! Box-Muller, σ = 0.3
      x(1, i) = merge(1.0, -1.0, mod(corner, 2) == 0) + radius * cos(6.2831853 * u2)
      x(2, i) = merge(1.0, -1.0, corner / 2 == 0) + radius * sin(6.2831853 * u2)
      t(i) = merge(1.0, 0.0, mod(corner, 2) /= corner / 2)
    end do
  end subroutine make_blobs

  ! A small LCG in [0, 1): the example needs no library.
  real function next_uniform(state)
    integer(8), intent(inout) :: state
    state = modulo(state * 1103515245_8 + 12345_8, 2147483647_8)
    next_uniform = real(state) / 2147483647.0
  end function next_uniform

  subroutine check(status, what)
    integer(c_int), intent(in) :: status
    character(len=*), intent(in) :: what
    if (status /= SHARDPROP_OK) then
      print '(a, a, i0, a, a)', what, " failed, status ", status, ": ", shardprop_last_error()
      error stop 1
    end if
  end subroutine check

end program blobs
